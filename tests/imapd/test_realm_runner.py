# -*- test-case-name: tests.imapd.test_realm_runner -*-
"""
L{imapd.account.MailRealm} opens the user's store through its runner (the
storage pool in the daemon), never on the calling (reactor) thread: a user
whose mail is on a hung file system must not stop every other login.
"""

from __future__ import annotations

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import UsernamePassword
from twisted.cred.portal import Portal
from twisted.internet import defer

from imapd.account import IAccount, MailRealm


def test_store_opened_through_runner(tmp_path):
    opened = []
    pending = []

    def open_store(location, user, home, index_dir):
        opened.append(user)
        return object()

    def runner(user, fn, *args):
        d = defer.Deferred()
        pending.append((user, d, fn, args))
        return d

    realm = MailRealm(f"maildir:{tmp_path}/%u", lambda user: None, None,
                      open_store=open_store, runner=runner)
    portal = Portal(realm, [InMemoryUsernamePasswordDatabaseDontUse(alice=b"pw")])
    results = []
    portal.login(UsernamePassword(b"alice", b"pw"), None, IAccount).addCallback(results.append)
    # Checked, but the store is not opened until the runner runs the job.
    assert opened == [] and results == [] and [p[0] for p in pending] == ["alice"]
    user, d, fn, args = pending.pop()
    d.callback(fn(*args))
    assert opened == ["alice"]
    (iface, account, logout), = results
    assert iface is IAccount and account.user == "alice"


def test_without_runner_inline(tmp_path):
    realm = MailRealm(f"maildir:{tmp_path}/%u", lambda user: None, None,
                      open_store=lambda *a: object())
    iface, account, _logout = realm.requestAvatar(b"bob", None, IAccount)
    assert account.user == "bob"
