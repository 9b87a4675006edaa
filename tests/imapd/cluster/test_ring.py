"""
The director ring against CLUSTER.md's table, checked there against a
running Dovecot 2.3.19 director.
"""

import pytest

from imapd.cluster.hashing import user_hash
from imapd.cluster.ring import Ring, address_sort_key, canonical_address, host_points

THREE = [("127.0.0.2", 100), ("127.0.0.3", 100), ("127.0.0.4", 100)]
DOWN3 = [("127.0.0.2", 100), ("127.0.0.4", 100)]


def test_first_point_of_a_host():
    """Point 0 of 127.0.0.2 is MD5("127.0.0.2-0")[:4]."""
    assert host_points("127.0.0.2", 1) == [0x186393EA]


def test_first_and_last_points_of_three_hosts():
    """The 3-host ring starts at 127.0.0.3-98 and ends at 127.0.0.2-49."""
    ring = Ring(THREE)
    points = ring.points()
    assert len(points) == 300
    assert points[0] == (0x01101391, "127.0.0.3")
    assert points[-1] == (0xFFED08C5, "127.0.0.2")
    assert points[0][0] == host_points("127.0.0.3", 99)[98]
    assert points[-1][0] == host_points("127.0.0.2", 50)[49]


@pytest.mark.parametrize("user,up3,down3", [
    ("alice", "127.0.0.3", "127.0.0.4"),
    ("erin", "127.0.0.3", "127.0.0.2"),
    ("heidi", "127.0.0.4", "127.0.0.4"),
    ("Dave@INFN.it", "127.0.0.2", "127.0.0.2"),
    ("user620", "127.0.0.3", "127.0.0.2"),
])
def test_cluster_md_owners(user, up3, down3):
    """Owners with three hosts up and with .3 down match CLUSTER.md."""
    h = user_hash(user)
    assert Ring(THREE).lookup(h) == up3
    assert Ring(DOWN3).lookup(h) == down3


def test_wrap_around():
    """A hash above the last point belongs to the first point."""
    ring = Ring(THREE)
    assert ring.lookup(0xFFFFFFFF) == "127.0.0.3"
    assert ring.lookup(0xFFED08C5) == "127.0.0.2"
    assert ring.lookup(0xFFED08C6) == "127.0.0.3"


def test_empty_ring():
    """No host up: no owner."""
    assert Ring([]).lookup(5) is None


def test_weights_shift_share():
    """A heavier host owns more of the hash space; weight 0 owns none."""
    users = [user_hash(f"user{i}") for i in range(300)]
    light = Ring([("127.0.0.2", 50), ("127.0.0.3", 200)])
    counts = {}
    for h in users:
        counts[light.lookup(h)] = counts.get(light.lookup(h), 0) + 1
    assert counts["127.0.0.3"] > counts["127.0.0.2"]
    assert {Ring([("127.0.0.2", 0), ("127.0.0.3", 10)]).lookup(h) for h in users} == {"127.0.0.3"}


def test_collisions_order_by_address_bytes():
    """Equal hashes order by address bytes, not text: .10 after .9."""
    assert address_sort_key("127.0.0.9") < address_sort_key("127.0.0.10")
    assert address_sort_key("127.0.0.10") < address_sort_key("::1")


def test_canonical_address():
    """Addresses are hashed in inet_ntop form; host names are refused."""
    assert canonical_address(" 2001:DB8:0::1 ") == "2001:db8::1"
    with pytest.raises(ValueError, match="not an IP address"):
        canonical_address("mail1.example.org")
