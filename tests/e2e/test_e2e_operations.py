"""
The daemon as a new sysadmin runs it (issue 16 "Defects found as a new
user"): the greeting, daemon mode, bad listeners, IPv6, the log.
"""

from __future__ import annotations

import socket

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


def test_version_option(tmp_path):
    """Issue 16 item 8: C{twistd imapd --version} prints the project's version."""
    import subprocess

    from e2e_helpers import daemon_env, twistd_argv

    from imapd import __version__

    result = subprocess.run(twistd_argv() + ["imapd", "--version"], cwd=tmp_path,
                            env=daemon_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"imapd {__version__} (Twisted ")
    assert not (tmp_path / "imapd-data").exists()


def test_session_lines_in_the_log(tmp_path, tls_files):
    """
    Issue 16 item 8, in the multi-process server: the log names the
    version at start, has no Twisted factory noise, one line per failed
    login (with the address and the reason), and a line for a connection
    that ends without a login; a dropped session is "disconnected", not
    "logout".
    """
    import imaplib
    import socket
    import time

    from imapd import __version__

    server = start_server(tmp_path, tls_files)
    client = imaplib.IMAP4(server.host, server.port)
    client.starttls(server.ssl_context())
    with pytest.raises(imaplib.IMAP4.error):
        client.login(server.user, "wrong password")
    client.shutdown()
    ok = imaplib.IMAP4(server.host, server.port)
    ok.starttls(server.ssl_context())
    ok.login(server.user, server.password)
    ok.select("INBOX")
    ok.shutdown()  # dropped, no LOGOUT
    with socket.create_connection((server.host, server.port)) as s:
        s.recv(1000)
    deadline = time.monotonic() + 15
    while server.daemon.log().count("disconnected") < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    server.daemon.stop()
    log = server.daemon.log()
    assert f"imapd {__version__} (Twisted " in log
    assert "Starting factory" not in log and "starting on" not in log
    failed = [line for line in log.splitlines() if "login failed" in line
              or "Authentication refused" in line and "#debug" not in line]
    assert len(failed) == 1, failed
    assert "remote=127.0.0.1" in failed[0] and "reason=wrong password" in failed[0]
    ends = [line.split("] ", 1)[1] for line in log.splitlines() if "disconnected" in line]
    assert len([e for e in ends if e.startswith("disconnected before login ")
                and "failed_logins=1" in e]) == 1, ends
    assert len([e for e in ends if e.startswith("disconnected user=alice ")]) == 1, ends
    # start_server's greeting probe, the failed login, the bare connection
    assert len([e for e in ends if e.startswith("disconnected before login ")]) == 3, ends
    assert " logout user=alice" not in log


@pytest.mark.parametrize("single", [False, True], ids=["processes", "single"])
def test_daemon_mode_port_in_use(tmp_path, tls_files, single):
    """
    Issue 16 item 1: without C{-n} (twistd daemonizes), a listener that
    cannot bind stops twistd with status 1 and the one line, as with
    C{-n}, and leaves no pid file; it does not hang.
    """
    import subprocess

    from e2e_helpers import daemon_env, twistd_argv

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config, _ = write_config(tmp_path, tls_files, {
            "listen": [f"tcp:{port}:interface=127.0.0.1"],
            "service": {"single_process": single}})
        pidfile = tmp_path / "imapd.pid"
        result = subprocess.run(
            twistd_argv() + [f"--pidfile={pidfile}", f"--logfile={tmp_path / 'twistd.log'}",
                             "imapd", "--config", str(config)],
            cwd=tmp_path, env=daemon_env(), capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result
    assert result.stderr.strip().splitlines() == [
        f"imapd: option 'listen': cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert not pidfile.exists()


def _one_line_failure(tmp_path, tls_files, settings) -> str:
    from e2e_helpers import run_twistd

    config, _ = write_config(tmp_path, tls_files, settings)
    result = run_twistd(["--config", str(config)], cwd=tmp_path)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_port_out_of_range(tmp_path, tls_files):
    """Issue 16 item 5: C{tcp:99999} is one line naming the option."""
    line = _one_line_failure(tmp_path, tls_files, {"listen": ["tcp:99999"]})
    assert "option 'listen': 'tcp:99999': port 99999 is not between 0 and 65535" in line


@pytest.mark.parametrize("single", [False, True], ids=["processes", "single"])
def test_unix_socket_in_missing_directory(tmp_path, tls_files, single):
    """Issue 16 item 5: a UNIX socket in a missing directory is one line."""
    path = tmp_path / "missing" / "imap.sock"
    line = _one_line_failure(tmp_path, tls_files, {
        "listen": [f"unix:{path}"], "service": {"single_process": single}})
    assert line == (f"imapd: option 'listen': cannot listen on {path}: "
                    f"the directory {tmp_path / 'missing'} does not exist")


@pytest.mark.parametrize("single", [False, True], ids=["processes", "single"])
def test_busy_unix_socket(tmp_path, tls_files, single):
    """Issue 16 item 5: a UNIX socket in use is words, not a bytes value."""
    path = tmp_path / "imap.sock"
    with socket.socket(socket.AF_UNIX) as busy:
        busy.bind(str(path))
        busy.listen()
        line = _one_line_failure(tmp_path, tls_files, {
            "listen": [f"unix:{path}"], "service": {"single_process": single}})
    assert line.startswith(f"imapd: option 'listen': cannot listen on {path}: "
                           "Address already in use")
    assert "b'" not in line


def test_bad_index_dir_names_index_dir(tmp_path, tls_files):
    """Issue 16 item 5: an index_dir that cannot be created is blamed, not data_dir."""
    (tmp_path / "afile").write_text("x")
    line = _one_line_failure(tmp_path, tls_files, {
        "mail": {"index_dir": str(tmp_path / "afile" / "index")}})
    assert "option 'mail.index_dir': cannot create " in line
    assert "data_dir" not in line


@pytest.mark.parametrize("single", [False, True], ids=["processes", "single"])
def test_tcp_listener_serves_ipv4_and_ipv6(tmp_path, tls_files, single):
    """
    Issue 16 item 6: C{tcp:PORT} without an interface greets IPv4 and
    IPv6 clients alike (Dovecot listens on C{*} and C{::}).
    """
    from e2e_helpers import free_ports, read_greeting

    port = free_ports(1)[0]
    config, _ = write_config(tmp_path, tls_files, {
        "listen": [f"tcp:{port}"], "auth": {"allow_plaintext": False},
        "service": {"single_process": single}})
    daemon = Daemon(["--config", str(config)], tmp_path).start()
    try:
        daemon.wait_for_greeting(port)
        assert read_greeting("::1", port).startswith(b"* OK ")
        assert read_greeting("127.0.0.1", port).startswith(b"* OK ")
    finally:
        daemon.stop()
    assert "remote=127.0.0.1:" in daemon.log()


def test_healthcheck_checks_the_configured_listeners(tmp_path, tls_files):
    """
    Issue 16 item 7: the container's health check connects to the
    listeners the configuration names (here a STARTTLS port, an implicit
    TLS port and a UNIX socket, none of them 127.0.0.1:143) and fails
    with one line per listener once the server is gone.
    """
    import subprocess
    import sys

    from e2e_helpers import daemon_env

    from e2e_helpers import free_ports

    sock = tmp_path / "imap.sock"
    port, tls_port = free_ports(2)
    config, _ = write_config(tmp_path, tls_files, {"listen": [
        f"tcp:{port}:interface=127.0.0.1", f"tls:{tls_port}:interface=127.0.0.1",
        f"unix:{sock}"]})
    check = [sys.executable, "-m", "imapd.healthcheck", "--config", str(config)]
    daemon = Daemon(["--config", str(config)], tmp_path).start()
    try:
        daemon.wait_for_greeting(port)
        healthy = subprocess.run(check, cwd=tmp_path, env=daemon_env(), capture_output=True,
                                 text=True, timeout=60)
    finally:
        daemon.stop()
    assert healthy.returncode == 0, healthy.stderr
    sick = subprocess.run(check, cwd=tmp_path, env=daemon_env(), capture_output=True,
                          text=True, timeout=60)
    assert sick.returncode == 1
    lines = sick.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("imapd healthcheck: ") for line in lines)
    assert f"tls:{tls_port}:interface=127.0.0.1" in lines[1]
