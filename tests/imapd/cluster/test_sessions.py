"""
A backend keeps the users with sessions on it placed there (issue 15:
"keeps users where they are while they have sessions").
"""

import pytest
from twisted.cred.portal import Portal
from twisted.internet import defer, task

from imapd.account import IAccount
from imapd.cluster.owner import Directory
from imapd.cluster.placement import Placements, placements_dir
from imapd.cluster.sessions import (SessionRefreshService, SessionTracker, TrackingRealm,
                                    refresh_placements)
from imapd.cluster.table import HostsFile

EXPIRE = 30.0


class Account:
    def __init__(self, user):
        self.user = user
        self.closed = 0

    def logout(self):
        self.closed += 1


class Realm:
    def requestAvatar(self, avatarId, mind, *interfaces):
        account = Account(avatarId.decode())
        return defer.succeed((IAccount, account, account.logout))


@pytest.fixture
def directory(tmp_path):
    hosts = HostsFile(str(tmp_path / "hosts.json"), fsync=False)
    for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        hosts.update(lambda t, a=address: t.add(a))
    return Directory(hosts, Placements(placements_dir(hosts.path), "127.0.0.3", EXPIRE))


def login(realm, user):
    result = []
    Portal(realm).realm.requestAvatar(user.encode(), None, IAccount).addCallback(result.append)
    return result[0][1]


def test_tracking_counts_sessions_until_logout():
    """Each account is a session until its logout (called once or twice)."""
    tracker = SessionTracker()
    realm = TrackingRealm(Realm(), tracker)
    a1, a2, b = login(realm, "alice"), login(realm, "alice"), login(realm, "bob")
    assert tracker.active() == ["alice", "bob"]
    a1.logout()
    a1.logout()
    assert tracker.active() == ["alice", "bob"]
    a2.logout()
    b.logout()
    assert tracker.active() == []
    assert (a1.closed, a2.closed, b.closed) == (2, 1, 1)


def test_refresh_keeps_active_users_placed(directory):
    """alice (ring: .3) stays on .3 past user_expire while she has a session."""
    assert refresh_placements(directory, "127.0.0.3", ["alice"], now=0) == 1
    assert refresh_placements(directory, "127.0.0.3", ["alice"], now=EXPIRE - 1) == 1
    # A host added meanwhile that the ring would give alice does not take her.
    directory.hosts.update(lambda t: t.set_weight("127.0.0.3", 0))
    status = directory.status("alice", now=2 * EXPIRE - 2)
    assert (status.current.address, status.placed) == ("127.0.0.3", True)
    assert status.hashed.address != "127.0.0.3"
    # No session any more: expired, she follows the ring.
    assert directory.status("alice", now=2 * EXPIRE).current.address != "127.0.0.3"


def test_refresh_claims_only_own_users(directory):
    """A stray session of a user owned elsewhere (heidi: .4) claims nothing."""
    assert refresh_placements(directory, "127.0.0.3", ["heidi"], now=0) == 0
    assert directory.placements.lookup("heidi", now=1) is None


def test_service_refreshes_on_its_interval(directory):
    """The service refreshes every interval, only with active users."""
    clock = task.Clock()
    tracker = SessionTracker()
    calls = []

    def runner(f, *args):
        calls.append(args[2])
        return defer.maybeDeferred(f, *args)
    service = SessionRefreshService(directory, tracker, "127.0.0.3", 10, clock=clock,
                                    runner=runner)
    service.startService()
    clock.advance(10)
    assert calls == []  # nobody logged in
    tracker.opened("alice")
    clock.advance(10)
    assert calls == [["alice"]]
    assert directory.placements.lookup("alice", now=__import__("time").time()).host == \
        "127.0.0.3"
    service.stopService()
    clock.advance(10)
    assert len(calls) == 1
