"""
Starting the real daemon: --help, configuration errors, the embedded default.
"""

from __future__ import annotations

import imaplib
import re
import signal
import socket
import ssl
import stat
import subprocess

import pytest

from conf import load_config
from e2e_helpers import (
    PASSWORD,
    USER,
    Daemon,
    daemon_env,
    free_ports,
    run_twistd,
    twistd_argv,
    write_config,
)

OPTIONS = [
    "--config",
    "--listen",
    "--tls-cert",
    "--tls-key",
    "--passwd-file",
    "--mail-location",
    "--index-dir",
    "--allow-plaintext-auth",
    "--data-dir",
    "--hostname",
    "--example-config",
]


def test_help_lists_options(tmp_path):
    """twistd imapd --help describes every command-line option."""
    result = subprocess.run(
        twistd_argv() + ["imapd", "--help"],
        cwd=tmp_path, env=daemon_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for option in OPTIONS:
        assert option in result.stdout, option
    assert not (tmp_path / "imapd-data").exists()


def test_twistd_lists_the_plugin(tmp_path):
    """twistd --help names the imapd subcommand."""
    result = subprocess.run(
        twistd_argv() + ["--help"],
        cwd=tmp_path, env=daemon_env(), capture_output=True, text=True, timeout=60,
    )
    assert re.search(r"^\s+imapd\s", result.stdout, re.M), result.stdout


def test_example_config_option(tmp_path):
    """--example-config prints the documented example, which loads cleanly."""
    result = subprocess.run(
        twistd_argv() + ["imapd", "--example-config"],
        cwd=tmp_path, env=daemon_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "#listen = " in result.stdout and "[limits]" in result.stdout
    path = tmp_path / "example.toml"
    path.write_text(result.stdout)
    load_config(str(path), {})


@pytest.mark.parametrize(
    "settings, option, reason",
    [
        ({"listn": ["tcp:143"]}, "listn", "unknown option (did you mean 'listen'?)"),
        ({"storage": {"threads": "many"}}, "storage.threads", "must be an integer"),
        ({"tls": {"cert": "/nonexistent/cert.pem"}}, "tls.cert", "no such file: /nonexistent/cert.pem"),
        ({"listen": ["tcp:14x"]}, "listen", "'tcp:14x'"),
        ({"mail": {"location": "/srv/mail/%u"}}, "mail.location", "has no driver"),
    ],
)
def test_config_errors_stop_startup(tmp_path, tls_files, settings, option, reason):
    """A bad option stops twistd with status 1 and one line naming file and option."""
    config, _ = write_config(tmp_path, tls_files, settings)
    result = run_twistd(["--config", str(config)], cwd=tmp_path)
    assert result.returncode != 0
    message = f"imapd: {config}: option '{option}': "
    assert message in result.stderr, result.stderr + result.stdout
    assert reason in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "data").exists()


def test_bad_command_line_option(tmp_path):
    """A bad --listen is reported as a command-line problem."""
    result = run_twistd(["--listen", "tcp:nope"], cwd=tmp_path)
    assert result.returncode != 0
    assert "imapd: command line: option 'listen': 'tcp:nope'" in result.stderr
    assert not (tmp_path / "imapd-data").exists()


def test_port_in_use(tmp_path, tls_files):
    """A listener that can't bind stops the daemon with a one-line reason."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config, _ = write_config(tmp_path, tls_files, {"listen": [f"tcp:{port}:interface=127.0.0.1"]})
        result = run_twistd(["--config", str(config)], cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"option 'listen': cannot listen on 127.0.0.1:{port}" in output
    assert "Traceback" not in output


def _fingerprint(cert: str) -> str:
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", cert],
        capture_output=True, text=True, check=True,
    ).stdout
    return out.strip().split("=", 1)[1]


def _login_starttls(port: int, cafile: str, user: str, password: str) -> None:
    client = imaplib.IMAP4("127.0.0.1", port)
    ctx = ssl.create_default_context(cafile=cafile)
    client.starttls(ctx)
    assert client.login(user, password)[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    client.logout()


def test_embedded_default(tmp_path):
    """
    With no configuration, twistd -n imapd creates ./imapd-data (certificate,
    passwd-file, demo password 0600, mail, index) and serves the demo user;
    a second start reuses all of it.  Only the ports are overridden.
    """
    port, tls_port = free_ports(2)
    listen = ["--listen", f"tcp:{port}:interface=127.0.0.1",
              "--listen", f"tls:{tls_port}:interface=127.0.0.1"]
    daemon = Daemon(listen, tmp_path, "first").start()
    try:
        assert daemon.wait_for_greeting(port).startswith(b"* OK")
        data = tmp_path / "imapd-data"
        cert = data / "tls" / "cert.pem"
        password_file = data / "demo-password"
        for path in (cert, data / "tls" / "key.pem", data / "passwd", password_file):
            assert path.is_file(), path
        for path in (data / "tls" / "key.pem", password_file, data / "passwd"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert (data / "index").is_dir() and (data / "mail").is_dir()
        password = password_file.read_text().strip()
        passwd_line = (data / "passwd").read_text()
        assert re.fullmatch(
            r"demo:\{SHA512-CRYPT\}\$6\$[^:]+::::" + re.escape(str(data / "home" / "demo")) + "::\n",
            passwd_line,
        )
        log = daemon.log()
        assert log.count(password) == 1
        assert _fingerprint(str(cert)) in log
        assert "Plaintext logins allowed" in log
        _login_starttls(port, str(cert), "demo", password)
        # implicit TLS on the other port, same certificate
        with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw:
            ctx = ssl.create_default_context(cafile=str(cert))
            with ctx.wrap_socket(raw, server_hostname="localhost") as conn:
                assert conn.recv(4096).startswith(b"* OK")
        assert (data / "mail" / "demo").is_dir()
    finally:
        # twistd ends by re-raising the SIGTERM it handled
        assert daemon.stop() in (0, -signal.SIGTERM)
    assert "Server Shut Down." in daemon.log()

    again = Daemon(listen, tmp_path, "second").start()
    try:
        again.wait_for_greeting(port)
        log = again.log()
        assert password not in log and "Generated" not in log
        assert _fingerprint(str(cert)) in log
        assert (data / "passwd").read_text() == passwd_line
        _login_starttls(port, str(cert), "demo", password)
    finally:
        again.stop()


def test_data_dir_and_plaintext_override(tmp_path):
    """--data-dir moves the embedded default; --allow-plaintext-auth is obeyed."""
    port, = free_ports(1)
    daemon = Daemon(
        ["--data-dir", "elsewhere", "--listen", f"tcp:{port}", "--allow-plaintext-auth"],
        tmp_path,
    ).start()
    try:
        daemon.wait_for_greeting(port)
        assert (tmp_path / "elsewhere" / "passwd").is_file()
        assert not (tmp_path / "imapd-data").exists()
        # listening on every address, yet plaintext allowed because we said so
        assert "Plaintext logins allowed (auth.allow_plaintext)" in daemon.log()
        password = (tmp_path / "elsewhere" / "demo-password").read_text().strip()
        client = imaplib.IMAP4("127.0.0.1", port)
        assert client.login("demo", password)[0] == "OK"
        client.logout()
    finally:
        daemon.stop()


def test_non_loopback_listener_refuses_plaintext(tmp_path, tls_files):
    """With a listener on every address, auto refuses plaintext logins."""
    port, = free_ports(1)
    config, _ = write_config(tmp_path, tls_files, {"listen": [f"tcp:{port}"]})
    daemon = Daemon(["--config", str(config)], tmp_path).start()
    try:
        daemon.wait_for_greeting(port)
        assert "Plaintext logins refused" in daemon.log()
        client = imaplib.IMAP4("127.0.0.1", port)
        assert "LOGINDISABLED" in client.capabilities
        client.logout()
    finally:
        daemon.stop()


def _ports_free(*ports: int) -> bool:
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def test_true_defaults(tmp_path, monkeypatch):
    """
    twistd -n imapd with no option at all listens on 127.0.0.1:1143 and
    127.0.0.1:1993.  Where those ports are taken (another server on a shared
    machine), the same defaults are checked through the configuration.
    """
    monkeypatch.chdir(tmp_path)
    config = load_config(None, {})
    assert config.server.listen == ("tcp:1143:interface=127.0.0.1", "tls:1993:interface=127.0.0.1")
    assert config.server.data_dir == str(tmp_path / "imapd-data")
    if not _ports_free(1143, 1993):
        return
    daemon = Daemon([], tmp_path).start()
    try:
        assert daemon.wait_for_greeting(1143).startswith(b"* OK")
        cert = str(tmp_path / "imapd-data" / "tls" / "cert.pem")
        with socket.create_connection(("127.0.0.1", 1993), timeout=10) as raw:
            with ssl.create_default_context(cafile=cert).wrap_socket(raw, server_hostname="localhost") as c:
                assert c.recv(4096).startswith(b"* OK")
    finally:
        daemon.stop()


def test_log_level_filters_debug(tmp_path, tls_files):
    """log.level = "warn" keeps info lines (like logins) out of the log."""
    port, = free_ports(1)
    config, _ = write_config(
        tmp_path, tls_files,
        {"listen": [f"tcp:{port}:interface=127.0.0.1"], "log": {"level": "warn"}},
    )
    daemon = Daemon(["--config", str(config)], tmp_path).start()
    try:
        daemon.wait_for_greeting(port)
        client = imaplib.IMAP4("127.0.0.1", port)
        client.login(USER, PASSWORD)
        client.logout()
    finally:
        daemon.stop()
    assert f"login user={USER}" not in daemon.log()


def test_config_file_relative_paths(tmp_path, tls_files):
    """Paths in the file are taken relative to the file, whatever the cwd."""
    etc = tmp_path / "etc"
    etc.mkdir()
    config, (port, _) = write_config(etc, tls_files)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    daemon = Daemon(["--config", str(config)], cwd).start()
    try:
        daemon.wait_for_greeting(port)
        assert (etc / "index").is_dir()
        assert not (cwd / "index").exists() and not (cwd / "data").exists()
        # Of data_dir only the control socket's directory, which the file
        # does not configure elsewhere ([service] control_socket).
        assert [p.name for p in (etc / "data").iterdir()] == ["run"]
    finally:
        daemon.stop()


def test_mismatched_key_stops_startup(tmp_path, tls_files):
    """A key that does not belong to the certificate stops start-up, naming tls.cert."""
    from imapd.tls import generate_self_signed

    other_cert, other_key = str(tmp_path / "other.pem"), str(tmp_path / "other.key")
    generate_self_signed(other_cert, other_key, "other")
    config, _ = write_config(tmp_path, tls_files, {"tls": {"key": other_key}})
    result = run_twistd(["--config", str(config)], cwd=tmp_path)
    assert result.returncode != 0
    assert f"imapd: {config}: option 'tls.cert': the key in {other_key} does not belong" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
