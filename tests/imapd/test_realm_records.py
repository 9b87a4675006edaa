"""
L{imapd.account.MailRealm} with the L{UserRecord} of the authenticator as
avatar id (the single-process portal's L{AuthenticatorChecker}): the
record's home is C{~} and C{%h}, its C{userdb_mail} extra field replaces
the location, and other users' stores are found through the user
database's C{lookup}.
"""

from __future__ import annotations

from twisted.cred.credentials import UsernamePassword
from twisted.cred.portal import Portal

from imapd.account import IAccount, MailRealm
from imapd.auth.authenticator import Authenticator, AuthenticatorChecker
from imapd.auth.userdb import UserRecord


def test_home_of_the_record_is_tilde(tmp_path):
    realm = MailRealm("maildir:~/Maildir", lambda user: None, None)
    record = UserRecord("alice", 1001, 1001, str(tmp_path / "alice"))
    _iface, account, logout = realm.requestAvatar(record, None, IAccount)
    assert account.user == "alice"
    assert (tmp_path / "alice" / "Maildir" / "cur").is_dir()
    logout()


def test_userdb_mail_replaces_the_location(tmp_path):
    opened = []
    realm = MailRealm("maildir:~/Maildir", lambda user: None, None,
                      open_store=lambda *a, **k: opened.append(a) or object())
    record = UserRecord("carol", home="/home/carol",
                        extra={"userdb_mail": f"mbox:{tmp_path}/%u:INBOX=/var/mail/%u"})
    realm.requestAvatar(record, None, IAccount)
    assert opened == [(f"mbox:{tmp_path}/%u:INBOX=/var/mail/%u", "carol", "/home/carol", None)]


def test_other_users_store_through_lookup(tmp_path):
    opened = []

    def open_store(location, user, home, index_dir, existing=False):
        opened.append((location, user, home, existing))
        return object()

    users = {"bob": UserRecord("bob", home="/home/bob", extra={"userdb_mail": "maildir:~/M"})}
    realm = MailRealm("maildir:~/Maildir", lambda user: None, None, open_store=open_store,
                      lookup=users.get)
    _iface, account, _logout = realm.requestAvatar(UserRecord("alice", home="/h/a"), None,
                                                   IAccount)
    assert account.other_store("bob") is not None
    assert account.other_store("nobody") is None
    assert opened[-1] == ("maildir:~/M", "bob", "/home/bob", True)


def test_portal_with_the_authenticator(tmp_path):
    """The record the Authenticator gives is what the realm opens."""
    from twisted.internet.defer import succeed

    class Yes:
        def requestAvatarId(self, credentials):
            return succeed(credentials.username.decode())

    class Users:
        def lookup(self, name):
            return UserRecord(name, 2000, 2000, str(tmp_path / name))

    auth = Authenticator(Yes(), Users(), runner=lambda f, *a: f(*a))
    realm = MailRealm("maildir:~/Maildir", lambda user: None, None)
    portal = Portal(realm, [AuthenticatorChecker(auth)])
    results = []
    portal.login(UsernamePassword(b"dave", b"pw"), None, IAccount).addBoth(results.append)
    (_iface, account, logout), = results
    assert account.user == "dave"
    assert (tmp_path / "dave" / "Maildir" / "new").is_dir()
    logout()
