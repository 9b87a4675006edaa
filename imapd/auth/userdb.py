# -*- test-case-name: tests.imapd.auth.test_userdb -*-
"""
The user database: who a logged-in user is on this host.

A password check (L{imapd.auth.checker}, PAM) says only that a name may
log in; the user database says where that user's mail is and as whom it
is opened: uid, gid and home, as Dovecot's userdb does.  Virtual users
have no uid of their own (L{UserRecord.uid} is None: the server's);
system users have their own, and their mail worker runs as them
(L{imapd.process.privileges.become_user}).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from zope.interface import Interface

__all__ = ["UserRecord", "IUserDB"]


@dataclass(frozen=True)
class UserRecord:
    """
    One user as the mail side needs it.

    @ivar name: the login name (e.g. C{alice} or C{alice@example.org}).
    @ivar uid: the numeric user id the user's mail is opened as, or None
        for the server's own (virtual users).
    @ivar gid: the primary group id, or None for the server's own.
    @ivar home: the home directory (C{~} and C{%h} of a mail location),
        or None.
    @ivar extra: Dovecot-style extra fields (C{userdb_mail=...}), key to
        value.
    """

    name: str
    uid: Optional[int] = None
    gid: Optional[int] = None
    home: Optional[str] = None
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def system(self) -> bool:
        """Whether the user's mail is opened under a uid of its own."""
        return self.uid is not None


class IUserDB(Interface):
    """Look a user up after (or without) a password check."""

    def lookup(name: str) -> Optional[UserRecord]:
        """
        The user called C{name}, or None if there is none.  Blocking (it may
        read a file or the system's password database).
        """
