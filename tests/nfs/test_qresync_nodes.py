"""
A QRESYNC client moving between two nodes on NFS mounts (issue 20): it
caches the mailbox on one node, another client changes it through the
other node, and it comes back, at once, while the mounts' caches still
hold the old state, on either node.  Applying only the VANISHED
(EARLIER) and FETCH responses must give exactly what the server has, and
only the changed messages may be sent.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nfsmount import NFSOptions
from scenario import STORES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import start_server  # noqa: E402
from test_e2e_qresync import Raw, code, fetched_flags, vanished  # noqa: E402

COUNT = 20
NODE_A = NFSOptions(acregmin=3, acdirmin=3, link_replay=0.05, clock_offset=2)
NODE_B = NFSOptions(acregmin=3, acdirmin=3, link_replay=0.05, clock_offset=-2)


def _resync(client: Raw, uidvalidity: int, modseq: int, cache: dict) -> tuple[set, dict, int]:
    sel = client.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert code(sel, "UIDVALIDITY") == uidvalidity
    gone, updates = vanished(sel), fetched_flags(sel)
    for uid in gone:
        cache.pop(uid, None)
    cache.update(updates)
    return gone, updates, code(sel, "HIGHESTMODSEQ")


@pytest.mark.parametrize("store", ["maildir"])
def test_qresync_client_moving_between_nodes(nfs_mounts, tmp_path, tls_files, store):
    spec = STORES[store]
    a, b = nfs_mounts(2, [NODE_A, NODE_B])
    spec.prepare(a.source)
    nodes = []
    for i, mount in enumerate((a, b)):
        root = tmp_path / f"node{i}"
        root.mkdir()
        nodes.append(start_server(root, tls_files, {"mail": {
            "location": spec.location(mount.path), **spec.mail_settings}}, name=f"node{i}"))
    try:
        node_a, node_b = nodes
        # The client fills and caches the mailbox on node A.
        c1 = Raw(node_a)
        for n in range(1, COUNT + 1):
            c1.append(n, "\\Seen" if n % 3 == 0 else "")
        assert c1.cmd("ENABLE QRESYNC") == ["* ENABLED QRESYNC"]
        sel = c1.cmd("SELECT INBOX")
        uidvalidity, modseq = code(sel, "UIDVALIDITY"), code(sel, "HIGHESTMODSEQ")
        cache = fetched_flags(c1.cmd("UID FETCH 1:* (FLAGS)"))
        assert len(cache) == COUNT

        # Another client changes it through node B.
        c2 = Raw(node_b)
        c2.cmd("SELECT INBOX")
        c2.cmd("UID STORE 2,5,9 +FLAGS.SILENT (\\Flagged $Label1)")
        c2.cmd("UID STORE 3,6 -FLAGS.SILENT (\\Seen)")
        c2.cmd("UID STORE 4,7,8 +FLAGS.SILENT (\\Deleted)")
        c2.cmd("UID EXPUNGE 4,7,8")
        c2.append(COUNT + 1, "\\Answered")

        # The client comes back on node A at once (its caches still old).
        gone, updates, highest = _resync(c1, uidvalidity, modseq, cache)
        assert gone >= {4, 7, 8} and not gone & set(cache)
        assert set(updates) == {2, 3, 5, 6, 9, COUNT + 1}
        assert cache == fetched_flags(c2.cmd("UID FETCH 1:* (FLAGS)"))
        assert highest > modseq

        # It moves to node B: nothing changed since, nothing is sent.
        c3 = Raw(node_b)
        c3.cmd("ENABLE QRESYNC")
        gone, updates, again = _resync(c3, uidvalidity, highest, cache)
        assert not gone and not updates and again == highest

        # A change through node A, and the client, still on node B, gets it.
        c1.cmd("UID STORE 10 +FLAGS.SILENT (\\Flagged)")
        c1.cmd("UID STORE 11 +FLAGS.SILENT (\\Deleted)")
        c1.cmd("UID EXPUNGE 11")
        gone, updates, last = _resync(c3, uidvalidity, highest, cache)
        assert gone >= {11} and set(updates) == {10}
        assert cache == fetched_flags(c3.cmd("UID FETCH 1:* (FLAGS)"))
        assert cache == fetched_flags(c1.cmd("UID FETCH 1:* (FLAGS)"))
        assert last > highest
        for c in (c1, c2, c3):
            c.close()
    finally:
        for node in nodes:
            node.daemon.stop()
