"""
End-to-end QRESYNC (RFC 7162; issue 8 "Proof") against the real daemon,
on Maildir and mbox: a client caches a mailbox (UIDs, flags,
HIGHESTMODSEQ), another session flags, expunges and appends, and the first
client comes back with SELECT ... (QRESYNC (uidvalidity modseq)).  Applying
only the VANISHED (EARLIER) and FETCH responses must give exactly the
server's state, and only the changed messages may be sent.  The second
variant stops the daemon, deletes its index directory and starts a fresh
one in between: MODSEQs live in the shared store (storage.modseq), not in
the index, so the resync is still exact and still incremental.
"""

from __future__ import annotations

import re
import shutil

import pytest

from e2e_helpers import LineClient as Raw, start_server

COUNT = 30


def fetched_flags(lines) -> dict[int, frozenset[str]]:
    """UID -> flags from FETCH responses (\\Recent is session state: dropped)."""
    out = {}
    for line in lines:
        if " FETCH (" not in line:
            continue
        uid = int(re.search(r"UID (\d+)", line).group(1))
        flags = re.search(r"FLAGS \(([^)]*)\)", line).group(1).split()
        out[uid] = frozenset(f for f in flags if f != "\\Recent")
    return out


def vanished(lines) -> set[int]:
    out: set[int] = set()
    for line in lines:
        m = re.fullmatch(r"\* VANISHED \(EARLIER\) ([\d:,]+)", line)
        if not m:
            continue
        for part in m.group(1).split(","):
            a, _, b = part.partition(":")
            out.update(range(int(a), int(b or a) + 1))
    return out


def code(lines, name: str) -> int:
    for line in lines:
        m = re.match(r"\* OK \[%s (\d+)\]" % name, line)
        if m:
            return int(m.group(1))
    raise AssertionError(f"no {name} in {lines!r}")


def index_dirs(root) -> list:
    return [p for p in root.rglob("index") if p.is_dir() and any(p.iterdir())]


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
@pytest.mark.parametrize("drop_index", [False, True], ids=["kept-index", "deleted-index"])
def test_qresync_reconnect_ends_with_server_state(tmp_path, tls_files, kind, drop_index):
    settings = {"mail": {"location": f"{kind}:{tmp_path}/mail/%u", "index_dir": "index"}}
    server = start_server(tmp_path, tls_files, settings)
    try:
        # Client 1 fills the mailbox, then caches it with CONDSTORE.
        c1 = Raw(server)
        for n in range(1, COUNT + 1):
            c1.append(n, "\\Seen" if n % 3 == 0 else "")
        sel = c1.cmd("SELECT INBOX (CONDSTORE)")
        uidvalidity, modseq = code(sel, "UIDVALIDITY"), code(sel, "HIGHESTMODSEQ")
        cache = fetched_flags(c1.cmd("UID FETCH 1:* (FLAGS)"))
        c1.cmd("UID FETCH 1:* (ENVELOPE)")  # fills the per-node index
        assert len(cache) == COUNT
        c1.close()

        # Client 2 changes flags, expunges and appends.
        c2 = Raw(server)
        c2.cmd("SELECT INBOX")
        c2.cmd("UID STORE 2,5,9 +FLAGS.SILENT (\\Flagged $Label1)")
        c2.cmd("UID STORE 3,6 -FLAGS.SILENT (\\Seen)")
        c2.cmd("UID STORE 4,7,8,20 +FLAGS.SILENT (\\Deleted)")
        c2.cmd("UID EXPUNGE 4,7,8,20")
        c2.append(COUNT + 1, "\\Answered")
        c2.append(COUNT + 2, "")
        c2.close()
        changed = {2, 5, 9, 3, 6, COUNT + 1, COUNT + 2}

        if drop_index:
            server.daemon.stop()
            assert server.daemon.process.poll() is not None
            dirs = index_dirs(tmp_path)
            assert dirs, "the daemon kept no index to delete"
            for d in dirs:
                shutil.rmtree(d)
            server = start_server(tmp_path, tls_files, settings)

        # Client 1 comes back and resynchronises with QRESYNC only.
        c1 = Raw(server)
        assert c1.cmd("ENABLE QRESYNC") == ["* ENABLED QRESYNC"]
        sel = c1.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
        gone = vanished(sel)
        updates = fetched_flags(sel)
        assert gone >= {4, 7, 8, 20}
        assert set(updates) == changed  # incremental: only what changed
        for uid in gone:
            cache.pop(uid, None)
        cache.update(updates)
        truth = fetched_flags(c1.cmd("UID FETCH 1:* (FLAGS)"))
        assert cache == truth
        new_highest = code(sel, "HIGHESTMODSEQ")
        assert new_highest > modseq
        # Nothing changed since: a second resync sends nothing.
        again = c1.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {new_highest}))")
        assert not vanished(again) and not fetched_flags(again)
        c1.close()
    finally:
        server.daemon.stop()
