"""
The class behind issue 18 item 2, on the way out: a client that asks for
much (C{FETCH 1:* BODY[]}) and does not read made the server buffer the
whole answer in memory.  Now a client that does not read stops the
response stream after a few parts (and gets no further command run), so
it costs a bounded amount of memory, and others are served meanwhile.
"""

import time

from e2e_sessions import deliver, make_maildir
from security_helpers import Prober, RawSession, login, rss_kib

MESSAGES = 48
SIZE = 1 << 20


def test_fetch_without_reading(imapd_server):
    """48 MB asked for and never read: the server grows by far less, and a second client's NOOP is prompt."""
    inbox = make_maildir(imapd_server.root / "mail" / imapd_server.user)
    line = b"x" * 998 + b"\r\n"
    for i in range(MESSAGES):
        deliver(inbox, b"Subject: big %d\r\n\r\n" % i + line * (SIZE // len(line)))
    s = RawSession(imapd_server.port)
    login(s, imapd_server)
    s.ok("s1", "SELECT INBOX")
    s.ok("f0", "FETCH 1:* (RFC822.SIZE)")
    pid = imapd_server.daemon.process.pid
    before = rss_kib(pid)
    peak = before
    with Prober(imapd_server, limit=10) as probe:
        s.send("f1 FETCH 1:* BODY.PEEK[]")
        s.send("n1 NOOP")
        for _ in range(30):
            time.sleep(0.2)
            peak = max(peak, rss_kib(pid))
    grown = peak - before
    assert grown < 24 * 1024, f"the server grew by {grown} KiB for a client that does not read"
    assert probe.worst < 5.0, f"a second client waited {probe.worst:.1f}s for NOOP"
    # Reading now, the client gets everything, in order.
    chunks, tail = [s.buf], s.buf[-100:]
    s.sock.settimeout(60)
    while not tail.endswith(b"n1 OK NOOP completed\r\n"):
        chunk = s.sock.recv(1 << 20)
        assert chunk, "the server closed the connection"
        chunks.append(chunk)
        tail = (tail + chunk)[-100:]
    data = b"".join(chunks)
    assert data.count(b"Subject: big") == MESSAGES
    assert b"f1 OK FETCH completed\r\nn1 OK NOOP completed\r\n" in data
    s.close()
