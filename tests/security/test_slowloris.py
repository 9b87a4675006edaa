"""
Issue 18 item 8: any received octet reset the pre-login timeout, so one
octet every 2 s held a connection for ever, and nothing limited the
number of connections.  Now a command line must be complete
C{limits.line_timeout} seconds after its first octet, a connection must
log in within C{limits.login_timeout} seconds, and C{limits.max_connections}
bounds the connections (C{max_connections_per_ip} is covered by
tests/imapd/test_session_limits.py: every address here is loopback, which
that limit leaves alone).
"""

import socket
import time

from e2e_helpers import read_greeting
from security_helpers import RawSession, connect, login

LIMITS = {"limits": {"line_timeout": 2, "login_timeout": 4, "idle_timeout_unauth": 60,
                     "max_connections": 4}}


def _trickle_until_closed(sock, payload: bytes, every: float, limit: float) -> tuple[float, bytes]:
    """Send C{payload} one octet at a time until the server closes; (seconds, what it said)."""
    started = time.monotonic()
    received = b""
    sock.settimeout(every)
    i = 0
    while time.monotonic() - started < limit:
        try:
            sock.sendall(payload[i % len(payload):i % len(payload) + 1])
        except OSError:
            break
        i += 1
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        received += chunk
    return time.monotonic() - started, received


def test_trickled_line_is_cut_off(start_imapd):
    """One octet every 0.3 s: the line never ends and the connection is closed after line_timeout."""
    server = start_imapd(LIMITS)
    sock = connect(server.port)
    sock.recv(4096)
    held, said = _trickle_until_closed(sock, b"a1 NOOP" * 100, 0.3, 20)
    assert held < 6, f"held for {held:.1f}s"
    assert b"* BYE Command line not completed in time" in said
    sock.close()


def test_busy_prelogin_session_has_a_deadline(start_imapd):
    """Complete NOOPs every 0.3 s keep the idle timer at bay but not the login deadline."""
    server = start_imapd(LIMITS)
    s = RawSession(server.port)
    started = time.monotonic()
    said = b""
    try:
        for i in range(100):
            said += s.command(f"n{i}", "NOOP", timeout=10)
            time.sleep(0.3)
    except (ConnectionError, OSError, TimeoutError):
        pass
    held = time.monotonic() - started
    assert held < 8, f"held for {held:.1f}s"
    assert b"* BYE Login timeout" in said + s.buf
    # A client that logs in in time stays.
    s2 = RawSession(server.port)
    login(s2, server)
    time.sleep(5)
    s2.ok("n1", "NOOP")
    s2.close()


def test_max_connections(start_imapd):
    """The connection beyond max_connections gets BYE [UNAVAILABLE]; a place frees when one closes."""
    server = start_imapd(LIMITS)
    held = [RawSession(server.port) for _ in range(4)]
    extra = connect(server.port)
    extra.settimeout(10)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = extra.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data == b"* BYE [UNAVAILABLE] Too many connections to this server\r\n"
    assert extra.recv(4096) == b""
    held.pop().close()
    # The server notices the close a moment later.
    deadline = time.monotonic() + 10
    greeting = read_greeting("127.0.0.1", server.port)
    while not greeting.startswith(b"* OK") and time.monotonic() < deadline:
        time.sleep(0.1)
        greeting = read_greeting("127.0.0.1", server.port)
    assert greeting.startswith(b"* OK [CAPABILITY ")
    assert "Refused 1 connection(s) (Too many connections to this server" in server.daemon.log()
    for s in held:
        s.close()
