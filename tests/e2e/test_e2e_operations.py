"""
The daemon as a new sysadmin runs it (issue 16 "Defects found as a new
user"): the greeting, daemon mode, bad listeners, IPv6, the log.
"""

from __future__ import annotations

import pytest

from e2e_helpers import Daemon, start_server, write_config


def test_hostname_option_in_greeting(tmp_path, tls_files):
    """
    Issue 16 item 3: --hostname changes the greeting, as --help says,
    over the configuration file's hostname.
    """
    config, (port, _tls_port) = write_config(tmp_path, tls_files)
    daemon = Daemon(["--config", str(config), "--hostname", "mail.example.org"], tmp_path).start()
    try:
        greeting = daemon.wait_for_greeting(port)
    finally:
        daemon.stop()
    assert greeting.startswith(b"* OK [CAPABILITY ")
    assert greeting.rstrip().endswith(b"] mail.example.org imapd ready."), greeting


def test_store_error_at_login_in_the_worker(tmp_path, tls_files):
    """
    Issue 16 item 2, in the mail worker of the multi-process server: a
    user whose mail root cannot be created (a regular file is in its
    way) gets C{NO [UNAVAILABLE]} without any path, and the log has one
    error line with the user, the session id and the reason (no
    traceback: a store error is the sysadmin's to fix, not a bug).
    """
    import imaplib
    import re
    import time

    server = start_server(tmp_path, tls_files)
    (tmp_path / "mail").mkdir(exist_ok=True)
    (tmp_path / "mail" / server.user).write_text("in the way")
    client = imaplib.IMAP4(server.host, server.port)
    client.starttls(server.ssl_context())
    try:
        with pytest.raises(imaplib.IMAP4.error) as caught:
            client.login(server.user, server.password)
    finally:
        client.shutdown()
    assert "[UNAVAILABLE]" in str(caught.value)
    assert str(tmp_path) not in str(caught.value)
    deadline = time.monotonic() + 10
    while "mail store unavailable" not in server.daemon.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    server.daemon.stop()
    log = server.daemon.log()
    lines = [line for line in log.splitlines() if "mail store unavailable" in line]
    assert len(lines) == 1, log
    assert f"user={server.user}" in lines[0] and re.search(r"session=\S+", lines[0])
    assert str(tmp_path / "mail" / server.user) in lines[0]
    assert "Traceback" not in log
