"""
The daemon under an init system (issue 16): sd_notify readiness on a
fake C{$NOTIFY_SOCKET}, SIGHUP reload, logging to a local syslog socket
with levels, and the unit file conf/imapd.service.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from e2e_helpers import REPO, Daemon, read_greeting, write_config


def _datagrams(sock: socket.socket, until: str, seconds: float = 60.0) -> list[str]:
    """Datagrams received until one holds C{until} (or the time is up)."""
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            got.append(sock.recv(65536).decode("utf-8", "replace"))
        except socket.timeout:
            break
        if until in got[-1]:
            break
    return got


def _start_and_log_in(tmp_path, tls_files, settings: dict) -> Daemon:
    """
    A daemon whose passwd-file has a bad line 2 (a warning), after one
    login and LOGOUT of alice (an info line; the auth process reads the
    passwd-file at the first login).
    """
    import imaplib

    config, (port, _tls) = write_config(tmp_path, tls_files, settings)
    with open(tmp_path / "passwd", "a") as f:
        f.write("broken-line-without-colon\n")
    daemon = Daemon(["--config", str(config)], tmp_path).start()
    try:
        daemon.wait_for_greeting(port)
        client = imaplib.IMAP4("127.0.0.1", port)
        client.login("alice", "correct horse battery")
        client.logout()
    except BaseException:
        daemon.stop()
        raise
    return daemon


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()


@pytest.mark.parametrize("single", [False, True], ids=["processes", "single"])
def test_ready_reload_stop_notifications(tmp_path, tls_files, notify_socket, single):
    """
    Type=notify: READY=1 once the server greets (in the multi-process
    server, once its processes are up), RELOADING=1 then READY=1 around a
    SIGHUP reload (multi-process), STOPPING=1 at SIGTERM.
    """
    config, (port, _tls) = write_config(tmp_path, tls_files,
                                        {"service": {"single_process": single}})
    daemon = Daemon(["--config", str(config)], tmp_path).start()
    try:
        ready = _datagrams(notify_socket, "READY=1")
        assert ready and "READY=1" in ready[-1], daemon.log()
        assert f"MAINPID={daemon.process.pid}" in ready[-1]
        assert "STATUS=Serving tcp:" in ready[-1]
        # Ready means served, not only queued.
        assert read_greeting("127.0.0.1", port).startswith(b"* OK ")
        if not single:
            daemon.process.send_signal(signal.SIGHUP)
            reload = _datagrams(notify_socket, "READY=1")
            assert "RELOADING=1" in reload[0] and "MONOTONIC_USEC=" in reload[0], reload
            assert "READY=1" in reload[-1] and "generation 2" in reload[-1], reload
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        stop = _datagrams(notify_socket, "STOPPING=1", 30)
        daemon.stop()
    assert "STOPPING=1" in stop[-1]


@pytest.mark.parametrize("single", [False, True], ids=["processes", "single"])
def test_syslog_target_keeps_levels(tmp_path, tls_files, single):
    """
    [log] target = "syslog": lines go to the syslog socket with their
    level as severity (a passwd-file warning is <20>: mail.warning; a
    login is <22>: mail.info), the children's lines too.
    """
    path = str(tmp_path / "devlog")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        daemon = _start_and_log_in(tmp_path, tls_files, {
            "service": {"single_process": single},
            "log": {"level": "info", "target": "syslog", "syslog_socket": path}})
        try:
            lines = _datagrams(sock, "logout user=alice", 30)
        finally:
            daemon.stop()
    finally:
        sock.close()
    text = "\n".join(lines)
    assert re.search(r"^<20>imapd\[\d+\]: \[imapd\.auth\.passwdfile\] passwd-file .*:2: ",
                     text, re.M), text
    assert re.search(r"^<22>imapd\[\d+\]: \[\S+\] login user=alice ", text, re.M), text
    assert not any(line.startswith("<23>") for line in lines)  # level info: no debug
    # stdout no longer gets the lines
    assert "login user=alice" not in daemon.log()


def test_unit_file_verifies(tmp_path):
    """
    conf/imapd.service is a Type=notify unit with a SIGHUP reload that
    systemd-analyze verify accepts (with ExecStart pointing at this
    venv's twistd, since /opt/imapd is not installed here).
    """
    unit = (REPO / "conf" / "imapd.service").read_text()
    assert re.search(r"^Type=notify$", unit, re.M)
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", unit, re.M)
    assert "--pidfile= imapd --config /etc/imapd/imapd.toml" in unit
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (package systemd) is needed"
    from e2e_helpers import twistd_argv

    copy = tmp_path / "imapd.service"
    copy.write_text(unit.replace("/opt/imapd/bin/twistd", twistd_argv()[0]))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert str(copy) not in result.stderr + result.stdout, result.stderr


def test_journal_target_prefixes_levels(tmp_path, tls_files):
    """
    [log] target = "journal": every line on standard output starts with
    the <N> priority systemd reads (sd-daemon(3)), the children's too.
    """
    daemon = _start_and_log_in(tmp_path, tls_files, {"log": {"level": "info",
                                                             "target": "journal"}})
    try:
        deadline = time.monotonic() + 20
        while "logout user=alice" not in daemon.log() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        daemon.stop()
    lines = daemon.log().splitlines()
    ours = [line for line in lines if line.startswith("<")]
    assert any(re.match(r"<4>\[imapd\.auth\.passwdfile\] passwd-file .*:2: ", line)
               for line in ours), lines
    assert any(re.match(r"<6>\[\S+\] disconnected before login ", line) for line in ours)
    # After the start (twistd's first lines), nothing without a prefix.
    first = lines.index(ours[0])
    assert all(line.startswith("<") for line in lines[first:]), lines[first:]
