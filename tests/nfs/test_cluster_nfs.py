"""
The cluster host table on NFS (two nfsfuse mounts of one directory, each
a node with its own attribute caches): a change made on one node is seen
by the other at its next lookup, and changes made at once from processes
on both nodes all land (the dotlock with link() replies replayed).
"""

from __future__ import annotations

import multiprocessing
import os

from nfsmount import NFSOptions

from imapd.cluster.hashing import user_hash
from imapd.cluster.table import HostsFile

FORK = multiprocessing.get_context("fork")
#: Long attribute caches, so that only a revalidating open sees a change.
SLOW = NFSOptions(acregmin=30, acdirmin=30, link_replay=0.2, clock_offset=5)


def test_change_on_one_node_seen_at_once_on_the_other(nfs_mounts):
    """
    Node B has cached the table; node A takes .3 down.  B's next lookup
    sees it (open revalidates), though a bare stat() on B still shows the
    old file for the attribute cache's 30 s.
    """
    a, b = nfs_mounts(2, [SLOW, SLOW])
    on_a = HostsFile(str(a.path / "hosts.json"))
    for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        on_a.update(lambda t, x=address: t.add(x))
    # An old file, so that B trusts its identity as a cache key.
    os.utime(a.source / "hosts.json", (1_700_000_000, 1_700_000_000))
    on_b = HostsFile(str(b.path / "hosts.json"))
    assert on_b.table().hashed_owner(user_hash("alice")).address == "127.0.0.3"
    before = os.stat(b.path / "hosts.json")
    on_a.update(lambda t: t.set_up("127.0.0.3", False))
    assert os.stat(b.path / "hosts.json").st_ino == before.st_ino  # stale attributes
    table = on_b.table()
    assert table.epoch == 4 and not table.get("127.0.0.3").up
    assert table.hashed_owner(user_hash("alice")).address == "127.0.0.4"


def _bump(path: str, address: str, count: int, start) -> None:
    code = 0
    try:
        hosts = HostsFile(path, lock_timeout=60)
        start.wait()
        for _ in range(count):
            hosts.update(lambda t: t.set_weight(address, t.get(address).weight + 1))
    except BaseException:
        code = 1
    os._exit(code)


def test_updates_from_both_nodes_all_land(nfs_mounts):
    """Two processes per node change the table at once: no change is lost."""
    a, b = nfs_mounts(2, [SLOW, SLOW])
    setup = HostsFile(str(a.path / "hosts.json"))
    setup.update(lambda t: t.add("127.0.0.2", weight=0))
    start = FORK.Event()
    procs = [FORK.Process(target=_bump, args=(str(m.path / "hosts.json"), "127.0.0.2", 10, start))
             for m in (a, a, b, b)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    table = HostsFile(str(a.source / "hosts.json")).table()
    assert (table.epoch, table.get("127.0.0.2").weight) == (41, 40)
    assert sorted(os.listdir(a.source)) == ["hosts.json"]
