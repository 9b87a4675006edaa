"""
Issue 18 item 2: 3 kB of DEFLATE that inflate to 262,144 NOOPs froze the
server for 39 s (one read inflated, parsed and ran everything before
yielding) and wrote 131,000 tracebacks to the log.  Now the input is
inflated as commands are consumed: a second client keeps its NOOP answered
promptly, memory stays flat, the log stays quiet, and every NOOP is
answered.
"""

import zlib

from security_helpers import Attacker, Prober, login, rss_kib

COUNT = 262_144


def test_compression_bomb(imapd_server):
    """The bomb costs the attacker time, not the other clients."""
    s = Attacker(imapd_server.port, timeout=120)
    login(s, imapd_server)
    s.compress()
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = bomb.compress(b"a NOOP\r\n" * COUNT) + bomb.flush(zlib.Z_SYNC_FLUSH)
    assert len(data) < 4096
    pid = imapd_server.daemon.process.pid
    before = rss_kib(pid)
    log_before = len(imapd_server.daemon.log())
    with Prober(imapd_server, limit=20) as probe:
        s.sock.sendall(data)
        lines = s.read_lines(COUNT, timeout=120)
        grown = rss_kib(pid) - before
    assert lines == [b"a OK NOOP completed"] * COUNT
    assert probe.worst < 5.0, f"a second client waited {probe.worst:.1f}s for NOOP"
    assert probe.count > 10
    assert grown < 64 * 1024, f"the server grew by {grown} KiB"
    log = imapd_server.daemon.log()[log_before:]
    assert "Traceback" not in log and len(log) < 20_000, log[-2000:]
    s.close()
