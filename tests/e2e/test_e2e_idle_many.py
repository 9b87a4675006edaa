"""
Many sessions in IDLE on the real daemon (issue 6 measures 1,000 with
imapbench for memory; this checks behaviour): 200 sessions SELECT INBOX
and IDLE, a message is delivered as an MDA would (tmp/ then rename into
new/), and every session is told about it with an untagged EXISTS, then
leaves IDLE with DONE and gets its tagged OK.  Completion is asserted,
never speed.
"""

from __future__ import annotations

import re

from e2e_helpers import USER, PASSWORD, Daemon, write_config
from e2e_sessions import RawSession, deliver, make_maildir, wait_all

SESSIONS = 200


def test_every_idle_session_sees_a_delivery(tmp_path, tls_files):
    inbox = make_maildir(tmp_path / "mail" / USER)
    deliver(inbox, b"Subject: first\r\n\r\none\r\n")
    config, (port, _tls) = write_config(tmp_path, tls_files, {
        "limits": {"idle_poll_interval": 1.0},
        # 200 sessions log in: keep the debug log of each out of the way.
        "log": {"level": "info"},
    })
    daemon = Daemon(["--config", str(config)], tmp_path).start()
    sessions = []
    try:
        daemon.wait_for_greeting(port)
        for _ in range(SESSIONS):
            s = RawSession(port)
            sessions.append(s)
            s.ok("l", f'LOGIN {USER} "{PASSWORD}"')
            assert b"* 1 EXISTS" in s.ok("s", "SELECT INBOX")
            s.send("i IDLE")
            s.read_until(lambda data: data.startswith(b"+ ") and data.endswith(b"\r\n"))
        deliver(inbox, b"Subject: second\r\n\r\ntwo\r\n")
        wait_all(sessions, lambda buf: re.search(rb"^\* 2 EXISTS\r$", buf, re.M) is not None)
        for s in sessions:
            s.send("DONE")
        wait_all(sessions, RawSession.tagged_done("i"))
        assert all(re.search(rb"^i OK", s.buf, re.M) for s in sessions)
    finally:
        for s in sessions:
            s.close()
        daemon.stop()
