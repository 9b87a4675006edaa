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
from imapd.cluster.sessions import (NodeSessionsService, SessionTracker, TrackingRealm,
                                    check_sessions)
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


def login(realm, user, session=None):
    result = []
    Portal(realm).realm.requestAvatar(user.encode(), session, IAccount).addCallback(
        result.append)
    return result[0][1]


class Session:
    def __init__(self):
        self.kicked = []

    def kick(self, reason):
        self.kicked.append(reason)


def test_tracking_counts_sessions_until_logout():
    """Each account is a session until its logout (called once or twice)."""
    tracker = SessionTracker()
    realm = TrackingRealm(Realm(), tracker)
    s1, s2 = Session(), Session()
    a1, a2, b = login(realm, "alice", s1), login(realm, "alice", s2), login(realm, "bob")
    assert tracker.active() == ["alice", "bob"]
    assert tracker.sessions("alice") == [s1, s2]
    a1.logout()
    a1.logout()
    assert tracker.active() == ["alice", "bob"] and tracker.sessions("alice") == [s2]
    a2.logout()
    b.logout()
    assert tracker.active() == []
    assert (a1.closed, a2.closed, b.closed) == (2, 1, 1)


def test_refresh_keeps_active_users_placed(directory):
    """alice (ring: .3) stays on .3 past user_expire while she has a session."""
    mine = set()
    assert check_sessions(directory, "127.0.0.3", ["alice"], mine, now=0) == []
    assert mine == {"alice"}
    for now in range(1, int(2 * EXPIRE), 5):
        check_sessions(directory, "127.0.0.3", ["alice"], mine, now=now)
    # Weight 0: the ring gives alice to another host; her session keeps her.
    directory.hosts.update(lambda t: t.set_weight("127.0.0.3", 0))
    now = 2 * EXPIRE + 1
    assert check_sessions(directory, "127.0.0.3", ["alice"], mine, now=now) == []
    status = directory.status("alice", now=now)
    assert (status.current.address, status.placed) == ("127.0.0.3", True)
    assert status.hashed.address != "127.0.0.3"
    # No session any more: expired, she follows the ring.
    assert directory.status("alice", now=now + EXPIRE).current.address != "127.0.0.3"


def test_placements_rewritten_only_when_stale(directory):
    """A refresh is written once a third of user_expire has gone, not every check."""
    mine = set()
    check_sessions(directory, "127.0.0.3", ["alice"], mine, now=0)
    assert directory.placements.flush(now=1) is False
    check_sessions(directory, "127.0.0.3", ["alice"], mine, now=EXPIRE / 3 - 1)
    assert directory.placements.lookup("alice", now=EXPIRE / 3).when == 0
    check_sessions(directory, "127.0.0.3", ["alice"], mine, now=EXPIRE / 3)
    assert directory.placements.lookup("alice", now=EXPIRE / 3).when == EXPIRE / 3


def test_moved_users_are_returned_once(directory):
    """A user owned here, then moved (host down, flush, move), is kicked once."""
    mine = set()
    check_sessions(directory, "127.0.0.3", ["alice", "heidi"], mine, now=0)
    assert mine == {"alice"}  # heidi (.4) is a stray session: not claimed
    directory.hosts.update(lambda t: t.set_up("127.0.0.3", False))
    assert check_sessions(directory, "127.0.0.3", ["alice", "heidi"], mine, now=1) ==         ["alice"]
    assert check_sessions(directory, "127.0.0.3", ["alice", "heidi"], mine, now=2) == []
    assert mine == set()


def test_refresh_claims_only_own_users(directory):
    """A stray session of a user owned elsewhere (heidi: .4) claims nothing."""
    assert check_sessions(directory, "127.0.0.3", ["heidi"], set(), now=0) == []
    assert directory.placements.lookup("heidi", now=1) is None


def test_service_checks_and_kicks(directory):
    """The service checks every interval and kicks the sessions of moved users."""
    clock = task.Clock()
    tracker = SessionTracker()
    calls = []

    def runner(f, *args):
        calls.append(list(args[0]))
        return defer.maybeDeferred(f, *args)
    service = NodeSessionsService(directory, tracker, "127.0.0.3", 2, clock=clock,
                                  runner=runner)
    service.startService()
    clock.advance(2)
    assert calls == []  # nobody logged in
    session = Session()
    tracker.opened("alice", session)
    clock.advance(2)
    assert calls == [["alice"]] and service.mine == {"alice"}
    directory.hosts.update(lambda t: t.flush("127.0.0.3"))
    directory.hosts.update(lambda t: t.set_up("127.0.0.3", False))
    clock.advance(2)
    assert session.kicked == ["Your mailbox moved to another server; please reconnect"]
    service.stopService()
    clock.advance(2)
    assert len(calls) == 2


def test_protocol_kick_between_commands(authed):
    """A kicked idle session gets BYE [UNAVAILABLE] and is closed."""
    authed.proto.kick("Your mailbox moved to another server; please reconnect")
    assert authed.lines() == [
        "* BYE [UNAVAILABLE] Your mailbox moved to another server; please reconnect"]
    assert authed.transport.disconnecting
    authed.proto.kick("again")  # closing already: nothing more
    assert authed.lines() == []


def test_login_passes_the_session_as_mind(conv):
    """The portal's realm gets the session (a tracking realm can end it later)."""
    tracker = SessionTracker()
    conv.context.portal.realm = TrackingRealm(conv.context.portal.realm, tracker)
    conv.login()
    assert tracker.sessions("demo") == [conv.proto]
    conv.proto.connectionLost(None)
    assert tracker.active() == []


def test_node_not_in_table_is_reported(directory):
    """A node name that is no host of the table is said at start."""
    from twisted.logger import capturedLogs

    from imapd.cluster.service import _check_node

    with capturedLogs() as events:
        _check_node(directory, "127.0.0.3")
        _check_node(directory, "mail1")
    texts = [e.get("log_format", "") for e in events]
    assert len([t for t in texts if "is not a host of the table" in t]) == 1


def test_service_reports_its_sessions(directory, tmp_path):
    """
    Each check writes the keys of the users with sessions here when they
    changed (imapd.cluster.moves), and an empty report once they are gone.
    """
    from imapd.cluster.moves import SessionReports

    directory.reports = SessionReports(str(tmp_path / "sessions"), "127.0.0.3~pool-1")
    clock = task.Clock()
    tracker = SessionTracker()
    service = NodeSessionsService(directory, tracker, "127.0.0.3", 2, clock=clock,
                                  runner=defer.maybeDeferred)
    service.startService()
    reader = SessionReports(str(tmp_path / "sessions"))
    session = Session()
    tracker.opened("Alice", session)
    clock.advance(2)
    assert reader.sessions_of("127.0.0.3", ["alice", "heidi"]) == {"alice"}
    tracker.closed("Alice", session)
    clock.advance(2)
    assert reader.sessions_of("127.0.0.3", ["alice"]) == set()
    service.stopService()
