# -*- test-case-name: tests.imapd.adminops -*-
"""
The C{imapd-admin} areas for users and mail (issue 16): C{pw}, C{auth},
C{user}, C{config}, C{mailbox}, C{search}, C{fetch}, C{expunge},
C{quota}, C{index}, C{force-resync}, C{who} and C{kick}.  Shared pieces
(exit statuses, C{-u}/C{-A}, C{--json}, opening a user's store as a
login does) are in L{imapd.adminops.common}.
"""

__all__ = ["add_commands"]


def add_commands(areas) -> None:
    """Register every area of this package with C{imapd-admin}'s parser."""
    from imapd.adminops import configshow, mail, repair, sessions, users

    users.add_commands(areas)
    configshow.add_commands(areas)
    mail.add_commands(areas)
    repair.add_commands(areas)
    sessions.add_commands(areas)
