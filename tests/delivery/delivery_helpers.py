"""
Helpers of the delivery tests (the fixtures are in conftest.py): users in
a passwd-file, reading back what a store holds, and an LMTP connection
over a L{StringTransport}.
"""

from __future__ import annotations

from twisted.internet.testing import StringTransport

from imapd.delivery.core import Deliverer, userdb_lookup
from imapd.delivery.lmtp import LMTPFactory

USERS = ("alice", "bob@example.org")


def write_passwd(path, home_root) -> str:
    """A passwd-file of L{USERS} (password C{pw}) at C{path}."""
    path.write_text("".join(f"{u}:{{PLAIN}}pw::::{home_root / 'home' / u}::\n" for u in USERS))
    return str(path)


def passwd_users(passwd_file, first_valid_uid: int = 1000):
    """The logins' user database over C{passwd_file} (no password checks)."""
    from imapd.auth.authenticator import Authenticator, PasswdFileUserDB
    from imapd.auth.passwdfile import PasswdFile

    return Authenticator(None, PasswdFileUserDB(PasswdFile(passwd_file)),
                         first_valid_uid=first_valid_uid)


def location_for(kind: str, root) -> str:
    """The mail location of a daemon's test users: Maildirs, or an mbox INBOX beside folders."""
    if kind == "mbox":
        return f"mbox:{root}/mail/%u:INBOX={root}/mail/%u.inbox"
    return f"maildir:{root}/mail/%u"


def make_deliverer(location, passwd_file, tmp_path, **kwargs) -> Deliverer:
    return Deliverer(location, userdb_lookup(passwd_users(passwd_file)),
                     str(tmp_path / "index"), **kwargs)


def open_user_store(location, user, tmp_path):
    from storage.registry import open_store

    return open_store(location, user, None, str(tmp_path / "index"))


def messages_of(location, user, tmp_path, mailbox="INBOX") -> list[bytes]:
    """Every message of C{user}'s C{mailbox}, as the store gives them back."""
    store = open_user_store(location, user, tmp_path)
    try:
        box = store.open(mailbox, True)
        try:
            return [box.read(r.uid) for r in box.sync().messages]
        finally:
            box.close()
    finally:
        store.close()


class LMTPClient:
    """One LMTP connection to a L{LMTPFactory} over a StringTransport."""

    def __init__(self, factory: LMTPFactory) -> None:
        self.proto = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def send(self, data: bytes) -> list[str]:
        """Send C{data}; return the reply lines written since the last call."""
        self.proto.dataReceived(data)
        return self.lines()

    def lines(self) -> list[str]:
        data = self.transport.value()
        self.transport.clear()
        return [line for line in data.decode("utf-8", "replace").split("\r\n") if line]




def idling(server):
    """
    An IMAP session (L{e2e_helpers.LineClient}) of the daemon C{server}'s
    user with INBOX selected and IDLE started; the caller closes it.
    """
    from e2e_helpers import LineClient

    client = LineClient(server)
    client.cmd("SELECT INBOX")
    client.imap.send(b"i1 IDLE\r\n")
    assert client.imap.readline().startswith(b"+ ")
    return client
