"""
Issue 18 item 9: CR and ESC from a pre-login user name reached the log
raw, so a client could forge log lines (for fail2ban, for a reader) and
drive the terminal of whoever reads the log.  Every client string in the
log is escaped now.
"""

import time

from security_helpers import RawSession, login

EVIL = b"mallory\r2026-01-01T00:00:00+0000 [imapd#info] login user=root\x1b[2J\x07"


def _literal_command(s: RawSession, tag: str, head: bytes, literal: bytes, tail: bytes) -> bytes:
    s.sock.sendall(tag.encode() + b" " + head + b"{%d}\r\n" % len(literal))
    s.read_until(lambda b: b.startswith(b"+"), 10)
    s.sock.sendall(literal + tail + b"\r\n")
    return s.read_until(s.tagged_done(tag), 20)


def test_control_characters_are_escaped(imapd_server):
    """A user name, ID fields and a tag full of control characters reach the log escaped."""
    s = RawSession(imapd_server.port)
    s.ok("i1", 'ID ("name" "evil\x1b[31mclient" "x\x1b]0;pwned\x07" "y")')
    answer = _literal_command(s, "a1", b"LOGIN ", EVIL, b' "wrong password"')
    assert answer.startswith(b"a1 NO"), answer
    # A SERVERBUG or a refused login must not be needed to get them in:
    # the failed-login line has the user name.
    login(s, imapd_server, tag="a2")
    s.ok("a3", "LOGOUT")
    s.close()
    deadline = time.monotonic() + 10
    while "logout user=" not in imapd_server.daemon.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = imapd_server.daemon.log_path.read_bytes()
    assert b"login failed user=mallory\\x0d2026-01-01T00:00:00+0000 [imapd#info] login user=root" \
        b"\\x1b[2J\\x07 " in log, log[-3000:]
    assert b'name="evil\\x1b[31mclient"' in log
    assert b"\x1b" not in log and b"\x07" not in log
    assert b"\r" not in log
