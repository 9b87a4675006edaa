# -*- test-case-name: tests.imapd.test_account -*-
"""
What a successful login produces: the avatar of L{twisted.cred}.

The portal's realm (L{MailRealm}) turns an authenticated user name into an
L{IAccount}: the user's store, opened from the configured mail location
(Dovecot syntax, L{storage.location}).  Opening a store touches the disk
(it creates a missing Maildir), so with a C{runner} the realm opens it in
the storage thread pool, under the user's share: a user whose mail sits
on a hung NFS server must not stop the reactor, and so every other login.
"""

from __future__ import annotations

from typing import Callable, Optional

from twisted.cred.portal import IRealm
from zope.interface import Attribute, Interface, implementer

from imapd.auth.userdb import UserRecord

__all__ = ["IAccount", "Account", "MailRealm", "STORE_UNAVAILABLE", "mail_location_of",
           "store_open_failed"]


class IAccount(Interface):
    """A logged-in user."""

    user = Attribute("The user name (str).")
    store = Attribute("The user's L{storage.interfaces.IStore}.")

    def logout() -> None:
        """Release the store."""

    def other_store(user: str):
        """
        Blocking: the existing store of another user, to read (URLAUTH,
        RFC 4467 section 7.3), or None when there is no such user or
        store; the caller closes it.
        """


@implementer(IAccount)
class Account:
    """
    The plain L{IAccount}: a name and a store.

    @ivar index_dir: the per-node local index directory (DESIGN.md rule
        2), or None for no index; read by L{imapd.cache}.
    """

    def __init__(self, user: str, store, index_dir: Optional[str] = None,
                 open_other: Optional[Callable] = None,
                 record: Optional[UserRecord] = None) -> None:
        self.user = user
        #: the user database's record (its quota fields, L{imapd.server.QuotaPolicy})
        self.record = record
        self.store = store
        self.index_dir = index_dir
        self._open_other = open_other

    def logout(self) -> None:
        self.store.close()

    def other_store(self, user: str):
        if self._open_other is None or user == self.user:
            return None
        return self._open_other(user)


def mail_location_of(record: UserRecord, default: str) -> str:
    """
    The mail location of C{record}'s user: its C{userdb_mail} extra field
    (Dovecot's per-user override) if it has one, else C{default}.  Logins
    and deliveries both ask here, so both open the same store.
    """
    return record.extra.get("userdb_mail") or default


@implementer(IRealm)
class MailRealm:
    """
    Build accounts from a mail location.

    The avatar id is the L{UserRecord} of L{imapd.auth.authenticator}
    (its home is C{~} and C{%h}; an extra field C{userdb_mail} replaces
    the location for that user, as Dovecot's does), or a plain user name,
    whose home C{home_for} gives.

    @param location: a Dovecot-style mail location string, such as
        C{maildir:~/Maildir} or C{maildir:/srv/mail/%u}.
    @param home_for: returns the user's home directory (from the passwd
        file's home field) or None.
    @param index_dir: the per-node local index directory, or None.
    @param open_store: the store registry's opener (a seam for tests).
    @param runner: C{runner(user, fn, *args)} runs the blocking C{fn} off
        the reactor and returns a Deferred (L{imapd.server.StoragePool});
        None runs it inline (tests).
    @param user_exists: whether a name is a user of the user database
        (the passwd-file); with it, an account may open other users'
        existing stores for reading (L{Account.other_store}), without it
        it opens none.
    @param lookup: blocking, a name's L{UserRecord} or None (the user
        database, L{imapd.auth.authenticator.Authenticator.user}); when
        given, it replaces C{home_for} and C{user_exists} for other
        users' stores.
    """

    def __init__(
        self,
        location: str,
        home_for: Callable[[str], Optional[str]],
        index_dir: Optional[str] = None,
        open_store: Optional[Callable] = None,
        runner: Optional[Callable] = None,
        user_exists: Optional[Callable[[str], bool]] = None,
        lookup: Optional[Callable[[str], Optional[UserRecord]]] = None,
    ) -> None:
        if open_store is None:
            from storage.registry import open_store
        self._location = location
        self._home_for = home_for
        self._index_dir = index_dir
        self._open_store = open_store
        self._runner = runner
        self._user_exists = user_exists
        self._lookup = lookup

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IAccount not in interfaces:
            raise NotImplementedError("MailRealm only provides IAccount")
        if isinstance(avatarId, UserRecord):
            record = avatarId
        else:
            user = avatarId.decode("utf-8") if isinstance(avatarId, bytes) else avatarId
            record = UserRecord(user, home=self._home_for(user))
        if self._runner is not None:
            # twisted.cred's Portal.login chains a Deferred from here.
            return self._runner(record.name, self._avatar, record)
        return self._avatar(record)

    def _where(self, record: UserRecord) -> str:
        """The mail location of C{record}'s user."""
        return mail_location_of(record, self._location)

    def _avatar(self, record: UserRecord):
        user = record.name
        store = self._open_store(self._where(record), user, record.home, self._index_dir)
        other = (self._open_existing
                 if self._user_exists is not None or self._lookup is not None else None)
        account = Account(user, store, self._index_dir, other, record)
        return IAccount, account, account.logout

    def _open_existing(self, user: str):
        """
        Blocking: C{user}'s store as a login would open it (same location,
        home and index), if the user is in the user database and the store
        exists; None otherwise.  Nothing is created for a user who never
        logged in.
        """
        from storage.errors import StoreError

        if self._lookup is not None:
            record = self._lookup(user)
            if record is None:
                return None
        elif self._user_exists(user):
            record = UserRecord(user, home=self._home_for(user))
        else:
            return None
        try:
            return self._open_store(self._where(record), user, record.home,
                                    self._index_dir, existing=True)
        except StoreError:
            return None


#: What a client is told when its store cannot be opened at login: no
#: path and no system error text, which are the server's business (RFC
#: 5530 UNAVAILABLE: "temporary failure", try again later).
STORE_UNAVAILABLE = "Your mail cannot be opened now; try again later"


def store_open_failed(log, user: str, session, failure) -> tuple[str, str]:
    """
    Log a login whose store could not be opened, and say what the client
    gets (issue 16 item 2): a L{storage.errors.StoreError} (a missing or
    unwritable mail root, a hung NFS server) is one error line with the
    user, the session and the store's reason, and C{NO [UNAVAILABLE]};
    anything else is a server bug, logged with its traceback, and
    C{NO [SERVERBUG]}.

    @param session: the L{imapd.protocol.IMAPServerProtocol} that logged in.
    @param failure: a L{twisted.python.failure.Failure}.
    @return: (response code, text) for the tagged NO.
    """
    from storage.errors import StoreError

    from imapd.logtext import log_safe

    if failure.check(StoreError):
        from imapd import metrics

        metrics.store_error(failure.value)
        log.error("login failed user={user} session={session} remote={remote}: mail store "
                  "unavailable: {reason}", user=log_safe(user), session=session.session_id,
                  remote=session.peer, reason=str(failure.value))
        return "UNAVAILABLE", STORE_UNAVAILABLE
    log.failure("login failed user={user} session={session} remote={remote}: opening the "
                "mail store", failure, user=log_safe(user), session=session.session_id,
                remote=session.peer)
    return "SERVERBUG", "Internal error occurred; refer to the server log"
