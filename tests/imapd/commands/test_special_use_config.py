"""
RFC 6154 special-use mailboxes from configuration
(L{imapd.server.MailboxPolicy}, C{[mailboxes]} in the configuration):
other names than the defaults, other attributes, and auto-creation.
"""

import pytest

from imapd.server import MailboxPolicy

#: mbox mailboxes are files and cannot have children (\NoInferiors).
NI = r"{{( \\NoInferiors)?}}"


def run(conv, script: str) -> None:
    conv.script(script.replace("<NI>", NI))


@pytest.fixture
def custom(server, authed):
    """A session whose server names its special mailboxes like Outlook does."""
    server.mailboxes = MailboxPolicy(
        special_use=(("Sent Items", "\\Sent"), ("Deleted Items", "\\Trash"),
                     ("All Mail", "\\All"), ("Starred", "\\Flagged")),
        auto_create=("Sent Items", "Deleted Items"),
    )
    return authed


def test_auto_create_and_list_special_use(custom):
    """LIST creates the auto_create mailboxes; configured names carry their attribute, defaults do not."""
    custom.ok("c1 CREATE Sent")
    custom.ok("c2 CREATE starred")
    run(custom, 
        """
        C: t1 LIST "" "*"
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasNoChildren<NI> \\Trash) "/" "Deleted Items"
        S: * LIST (\\HasNoChildren<NI>) "/" Sent
        S: * LIST (\\HasNoChildren<NI> \\Sent) "/" "Sent Items"
        S: * LIST (\\Flagged \\HasNoChildren<NI>) "/" starred
        S: t1 OK LIST completed
        C: t2 LIST (SPECIAL-USE) "" "*"
        S: * LIST (\\HasNoChildren<NI> \\Trash) "/" "Deleted Items"
        S: * LIST (\\HasNoChildren<NI> \\Sent) "/" "Sent Items"
        S: * LIST (\\Flagged \\HasNoChildren<NI>) "/" starred
        S: t2 OK LIST completed
        C: t3 LIST "" "S%" RETURN (SPECIAL-USE)
        S: * LIST (\\HasNoChildren<NI>) "/" Sent
        S: * LIST (\\HasNoChildren<NI> \\Sent) "/" "Sent Items"
        S: t3 OK LIST completed
        C: t4 STATUS "Deleted Items" (MESSAGES)
        S: * STATUS "Deleted Items" (MESSAGES 0)
        S: t4 OK STATUS completed
        """
    )


def test_auto_created_once(custom, new_conv):
    """A second session's LIST finds them and creates nothing twice."""
    custom.ok('t1 LIST "" "*"')
    other = new_conv()
    other.login()
    lines = [l.replace(" \\NoInferiors", "") for l in other.ok('t1 LIST "" "*"')]
    assert sorted(lines[:-1]) == sorted([
        '* LIST (\\HasNoChildren) "/" INBOX',
        '* LIST (\\HasNoChildren \\Trash) "/" "Deleted Items"',
        '* LIST (\\HasNoChildren \\Sent) "/" "Sent Items"',
    ])


def test_create_special_use_follows_configuration(custom):
    """CREATE ... (USE ...) is accepted for the configured use of the name only."""
    run(custom, 
        """
        C: c1 CREATE "All Mail" (USE (\\All))
        S: c1 OK CREATE completed
        C: c2 CREATE Sent (USE (\\Sent))
        S: c2 NO [USEATTR] Special-use attributes follow the mailbox name here: none for Sent
        C: c3 CREATE Starred (USE (\\Trash))
        S: c3 NO [USEATTR] Special-use attributes follow the mailbox name here: \\Flagged for Starred
        """
    )


def test_no_auto_create_by_default(authed):
    """Without configuration nothing is created, and the default names keep their uses."""
    authed.ok("c1 CREATE Trash")
    run(authed, 
        """
        C: t1 LIST "" "*"
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasNoChildren<NI> \\Trash) "/" Trash
        S: t1 OK LIST completed
        """
    )


def test_auto_create_refused_by_the_store(server, authed, store_kind):
    """A name the store's layout refuses (a dot in Maildir++) is skipped; LIST still answers."""
    server.mailboxes = MailboxPolicy(auto_create=("Sent.Old", "Trash"))
    lines = [l.replace(" \\NoInferiors", "") for l in authed.ok('t1 LIST "" "*"')]
    expected = ['* LIST (\\HasNoChildren) "/" INBOX']
    if store_kind == "mbox":
        expected.append('* LIST (\\HasNoChildren) "/" Sent.Old')
    expected.append('* LIST (\\HasNoChildren \\Trash) "/" Trash')
    assert lines[:-1] == expected
