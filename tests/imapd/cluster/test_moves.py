"""
Moves (imapd.cluster.moves): the block file, the session reports, and a
login of a user being moved waiting in the tracking realm.
"""

import time

from twisted.internet import defer, task

from imapd.cluster.moves import MoveBlocks, SessionReports
from imapd.cluster.owner import Directory
from imapd.cluster.sessions import SessionTracker, TrackingRealm
from imapd.cluster.table import HostsFile


def test_blocks_until_released_or_expired(tmp_path):
    blocks = MoveBlocks(str(tmp_path / "hosts.json.moves"), fsync=False)
    now = time.time()
    assert blocks.blocked_until("alice", now) is None
    blocks.block(["alice", "bob"], now + 30)
    assert blocks.blocked_until("alice", now) == round(now + 30, 3)
    # Another reader (another node) sees it; an expired block is none.
    other = MoveBlocks(blocks.path)
    assert other.blocked_until("bob", now) is not None
    assert other.blocked_until("bob", now + 31) is None
    blocks.release(["alice"])
    assert other.blocked_until("alice", now) is None
    assert other.blocked_until("bob", now) is not None


def test_reports_are_per_host_and_its_workers(tmp_path):
    directory = str(tmp_path / "sessions")
    SessionReports(directory, "10.0.0.3").report(["a"])
    SessionReports(directory, "10.0.0.3~uid-1000").report(["b"])
    SessionReports(directory, "10.0.0.30").report(["c"])
    reader = SessionReports(directory)
    assert reader.sessions_of("10.0.0.3", ["a", "b", "c", "d"]) == {"a", "b"}
    assert reader.sessions_of("10.0.0.4", ["a"]) == set()


def test_a_moved_users_login_waits_for_the_move(tmp_path):
    """TrackingRealm answers a login of a blocked user only once it is released."""
    hosts = HostsFile(str(tmp_path / "hosts.json"), fsync=False)
    blocks = MoveBlocks(str(tmp_path / "hosts.json.moves"), fsync=False)
    directory = Directory(hosts, moves=blocks)

    class Realm:
        def requestAvatar(self, avatarId, mind, *interfaces):
            class Account:
                user = avatarId.decode()

                def logout(self):
                    pass
            return ("iface", Account(), lambda: None)

    clock = task.Clock()
    tracker = SessionTracker()
    realm = TrackingRealm(Realm(), tracker, directory, clock=clock, runner=defer.maybeDeferred)
    blocks.block(["alice"], time.time() + 60)
    got = []
    realm.requestAvatar(b"alice", object()).addCallback(got.append)
    realm.requestAvatar(b"bob", object()).addCallback(got.append)
    assert [r[1].user for r in got] == ["bob"]
    clock.advance(0.5)
    assert len(got) == 1 and tracker.active() == ["bob"]
    blocks.release(["alice"])
    clock.advance(0.1)
    assert [r[1].user for r in got] == ["bob", "alice"]
    assert tracker.active() == ["alice", "bob"]
