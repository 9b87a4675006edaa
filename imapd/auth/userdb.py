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

import pwd
from dataclasses import dataclass, field
from typing import Optional

from zope.interface import Interface, implementer

__all__ = ["UserRecord", "IUserDB", "SystemUserDB"]


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


@implementer(IUserDB)
class SystemUserDB:
    """
    Users from the system's password database (C{getpwnam(3)}: C{/etc/passwd},
    or whatever NSS is configured to ask): the C{[userdb] system = true}
    setting, for hosts whose mail users are Unix accounts (UW-IMAP's
    setting, Dovecot's C{userdb passwd}).

    Whether a uid may be served at all (root, C{first_valid_uid}) is the
    L{imapd.auth.authenticator.Authenticator}'s decision, so that it is
    logged the same way for every user database.
    """

    def __init__(self, getpwnam=pwd.getpwnam) -> None:
        self._getpwnam = getpwnam

    def lookup(self, name: str) -> Optional[UserRecord]:
        if not name or "\0" in name:
            return None
        try:
            entry = self._getpwnam(name)
        except KeyError:
            return None
        # The name as the database spells it; the home may be empty for
        # odd accounts (then C{~} in a mail location cannot be used).
        return UserRecord(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir or None)
