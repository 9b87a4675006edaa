"""
Owner lookup with placement memory: placed users stay while active and
for user_expire after; down, returning and flushed hosts; several writers.
"""

import pytest

from imapd.cluster.owner import Directory
from imapd.cluster.placement import Placements, placements_dir
from imapd.cluster.table import HostsFile

EXPIRE = 900.0


@pytest.fixture
def hosts(tmp_path):
    hosts = HostsFile(str(tmp_path / "hosts.json"), fsync=False)
    for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        hosts.update(lambda t, a=address: t.add(a))
    return hosts


def directory(hosts, writer="node1"):
    places = Placements(placements_dir(hosts.path), writer, EXPIRE)
    return Directory(hosts, places)


def test_ring_owner_without_placements(hosts):
    """Unplaced users follow the ring (CLUSTER.md: alice .3, heidi .4)."""
    d = Directory(hosts)
    assert d.owner("alice", now=0).address == "127.0.0.3"
    assert d.owner("HEIDI", now=0).address == "127.0.0.4"


def test_placed_user_stays_when_its_host_returns(hosts):
    """.3 down: alice goes to .4; .3 back: alice stays on .4 until expiry."""
    d = directory(hosts)
    hosts.update(lambda t: t.set_up("127.0.0.3", False))
    assert d.owner("alice", now=100).address == "127.0.0.4"
    hosts.update(lambda t: t.set_up("127.0.0.3", True))
    # A new user whose ring host is .3 goes there; alice does not move back.
    assert d.owner("alice", now=200).address == "127.0.0.4"
    status = d.status("alice", now=300)
    assert (status.current.address, status.hashed.address, status.placed) == \
        ("127.0.0.4", "127.0.0.3", True)
    # Each lookup refreshed the placement: it expires EXPIRE after the last.
    assert d.owner("alice", now=200 + EXPIRE - 1, record=False).address == "127.0.0.4"
    assert d.owner("alice", now=300 + EXPIRE, record=False).address == "127.0.0.3"


def test_host_down_replaces_its_users(hosts):
    """A placement on a host that went down no longer holds."""
    d = directory(hosts)
    assert d.owner("alice", now=0).address == "127.0.0.3"
    hosts.update(lambda t: t.set_up("127.0.0.3", False))
    assert d.owner("alice", now=1).address == "127.0.0.4"
    # .3 back up: alice was placed on .4 meanwhile and stays there.
    hosts.update(lambda t: t.set_up("127.0.0.3", True))
    assert d.owner("alice", now=2).address == "127.0.0.4"


def test_flush_replaces_users_by_the_ring(hosts):
    """flush .4 drops alice's placement there: she goes back to her ring host."""
    d = directory(hosts)
    hosts.update(lambda t: t.set_up("127.0.0.3", False))
    d.owner("alice", now=0)
    hosts.update(lambda t: t.set_up("127.0.0.3", True))
    assert d.owner("alice", now=1).address == "127.0.0.4"
    hosts.update(lambda t: t.flush("127.0.0.4"))
    assert d.owner("alice", now=2).address == "127.0.0.3"


def test_removed_host_loses_its_users(hosts):
    """A placement on a host no longer in the table does not hold."""
    d = directory(hosts)
    d.owner("alice", now=0)
    hosts.update(lambda t: t.remove("127.0.0.3"))
    assert d.owner("alice", now=1).address == "127.0.0.4"


def test_other_writers_see_flushed_placements(hosts):
    """A placement made on one node is honoured by another once written."""
    a, b = directory(hosts, "node-a"), directory(hosts, "node-b")
    hosts.update(lambda t: t.set_up("127.0.0.3", False))
    assert a.owner("alice", now=10).address == "127.0.0.4"
    hosts.update(lambda t: t.set_up("127.0.0.3", True))
    assert b.owner("alice", now=11, record=False).address == "127.0.0.3"  # not yet written
    assert a.placements.flush(now=11) is True
    assert a.placements.flush(now=11) is False  # nothing new
    assert b.owner("alice", now=12).address == "127.0.0.4"
    assert b.placements.users_on("127.0.0.4", now=12) == ["alice"]


def test_flush_drops_expired_records_and_reload(hosts):
    """Expired lines are not written; a restarted writer reads its own file."""
    d = directory(hosts)
    d.owner("alice", now=0)
    d.owner("heidi", now=EXPIRE)
    d.placements.flush(now=EXPIRE + 1)
    with open(d.placements.own_path) as f:
        lines = f.read().splitlines()
    assert [line.split(" ")[3] for line in lines] == ["heidi"]
    again = directory(hosts)
    assert again.placements.lookup("heidi", now=EXPIRE + 2).host == "127.0.0.4"


def test_key_is_the_hash_key(hosts):
    """Placement is by the expanded hash key: Alice and alice are one user."""
    d = directory(hosts)
    hosts.update(lambda t: t.set_up("127.0.0.3", False))
    d.owner("Alice", now=0)
    hosts.update(lambda t: t.set_up("127.0.0.3", True))
    assert d.owner("ALICE", now=1).address == "127.0.0.4"


def test_no_host_up(tmp_path):
    """No host up: no owner, nothing recorded."""
    d = directory(HostsFile(str(tmp_path / "none.json")))
    assert d.owner("alice", now=0) is None
    assert d.placements.flush(now=0) is False


def test_bad_writer_name(tmp_path):
    """A writer name must be a plain file name."""
    with pytest.raises(ValueError):
        Placements(str(tmp_path), "../x", EXPIRE)
