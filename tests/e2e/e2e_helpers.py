"""
End-to-end helpers: run the real C{twistd -n imapd} as a subprocess on free
loopback ports and talk to it over the network.  The fixtures are defined
at the end of this module and registered by the conftest.py of each
directory that uses them (tests/e2e, tests/security); tests import the
rest from here (a conftest module is not meant to be imported).

The daemon is the C{twistd} of the venv running pytest, with the checkout
first on C{PYTHONPATH} (so a development venv without an install works too;
in CI the checkout and the installed copy are the same code).  When a test
fails, the logs of the daemons it used are attached to its report.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: How long a daemon may take to greet (a busy 2-core CI machine is slow).
START_TIMEOUT = 60.0


def twistd_argv() -> list[str]:
    """The command that runs this venv's twistd."""
    script = Path(sys.executable).parent / "twistd"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def daemon_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_ports(count: int) -> list[int]:
    """Loopback ports that were free a moment ago (all different)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def daemon_pids(pid: int) -> list[int]:
    """
    C{pid} and its descendants: the daemon's processes (with several
    processes, issue 14, the mail is served by children of the master).
    """
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                # pid (comm) state ppid ...: comm may hold spaces
                parents[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found = [pid]
    for parent in found:
        found += [child for child, ppid in parents.items() if ppid == parent]
    return found


def run_twistd(args: list[str], cwd, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run C{twistd -n imapd ARGS} to completion (for runs that must stop)."""
    return subprocess.run(
        twistd_argv() + ["-n", "--pidfile=", "imapd", *args],
        cwd=cwd,
        env=daemon_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def read_greeting(host: str, port: int, timeout: float = 5.0) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


#: Every daemon started during the current test (conftest.py resets it and
#: attaches their logs to a failed test's report).
STARTED: list["Daemon"] = []


class Daemon:
    """One C{twistd -n imapd} process; its output goes to a log file."""

    def __init__(self, args: list[str], cwd, name: str = "imapd") -> None:
        self.args = args
        self.cwd = Path(cwd)
        self.log_path = self.cwd / f"{name}.log"
        self.name = name
        self.process: subprocess.Popen | None = None

    def start(self) -> "Daemon":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                twistd_argv() + ["-n", "--pidfile=", "imapd", *self.args],
                cwd=self.cwd,
                env=daemon_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        STARTED.append(self)
        return self

    def wait_for_greeting(self, port: int, host: str = "127.0.0.1") -> bytes:
        """Wait until C{port} greets; fail at once if the daemon died."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"imapd exited with {self.process.returncode}:\n{self.log()}")
            try:
                greeting = read_greeting(host, port)
                if greeting:
                    return greeting
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"imapd did not greet on {port} in {START_TIMEOUT}s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 15 s; returns the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(15)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Server:
    """A running daemon and what a client needs to reach it."""

    daemon: Daemon
    host: str
    port: int  # plain IMAP with STARTTLS
    tls_port: int  # implicit TLS
    user: str
    password: str
    cert: str  # the server's certificate (trust anchor for clients)
    config: Path
    root: Path

    def ssl_context(self, **kwargs):
        import ssl

        ctx = ssl.create_default_context(cafile=self.cert)
        for name, value in kwargs.items():
            setattr(ctx, name, value)
        return ctx


USER, PASSWORD = "alice", "correct horse battery"


def toml_text(settings: dict) -> str:
    """Render a small dict (top-level values, then tables) as TOML."""
    import json

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    lines = [f"{k} = {value(v)}" for k, v in settings.items() if not isinstance(v, dict)]
    for table, body in settings.items():
        if isinstance(body, dict):
            lines.append(f"\n[{table}]")
            lines.extend(f"{k} = {value(v)}" for k, v in body.items())
    return "\n".join(lines) + "\n"


def write_config(root: Path, tls_files, settings: dict | None = None,
                 users: dict[str, str] | None = None) -> tuple[Path, list[int]]:
    """
    A configuration for tests under C{root}: a passwd-file with L{USER},
    Maildirs and index in C{root}, free loopback ports; C{settings} (option
    -> value, tables as dicts) is merged over it.

    @param users: more users (name -> password), stored as PLAIN so that
        tests with many logins do not spend their time in SHA512-CRYPT.
    """
    from imapd.auth.schemes import hash_password

    port, tls_port = free_ports(2)
    cert, key = tls_files
    passwd = root / "passwd"
    lines = [f"{USER}:{hash_password(PASSWORD, 'SHA512-CRYPT')}::::{root / 'home' / USER}::\n"]
    lines += [f"{name}:{hash_password(secret, 'PLAIN')}::::{root / 'home' / name}::\n"
              for name, secret in (users or {}).items()]
    passwd.write_text("".join(lines))
    config = {
        "listen": [f"tcp:{port}:interface=127.0.0.1", f"tls:{tls_port}:interface=127.0.0.1"],
        "hostname": "imapd.test",
        "data_dir": "data",
        "tls": {"cert": cert, "key": key},
        "auth": {"passwd_file": "passwd"},
        "mail": {"location": f"maildir:{root}/mail/%u", "index_dir": "index"},
        "limits": {"failed_login_delay": 0.1},
        "log": {"level": "debug"},
    }
    for name, value in (settings or {}).items():
        if isinstance(value, dict):
            config.setdefault(name, {}).update(value)
        else:
            config[name] = value
    path = root / "imapd.toml"
    path.write_text(toml_text(config))
    return path, [port, tls_port]


def start_server(root: Path, tls_files, settings: dict | None = None, name: str = "imapd",
                 users: dict[str, str] | None = None) -> Server:
    config, (port, tls_port) = write_config(root, tls_files, settings, users)
    daemon = Daemon(["--config", str(config)], root, name).start()
    daemon.wait_for_greeting(port)
    return Server(
        daemon=daemon,
        host="127.0.0.1",
        port=port,
        tls_port=tls_port,
        user=USER,
        password=PASSWORD,
        cert=tls_files[0],
        config=config,
        root=root,
    )


class LineClient:
    """
    A minimal line-level IMAP client over STARTTLS (imaplib only for
    STARTTLS and LOGIN): commands, APPEND with LITERAL+, and the lines a
    server sends unasked (IDLE, NOTIFY).
    """

    def __init__(self, server) -> None:
        import imaplib

        self.imap = imaplib.IMAP4(server.host, server.port, timeout=60)
        self.imap.starttls(server.ssl_context())
        self.imap.login(server.user, server.password)
        self.n = 0

    def cmd(self, text: str, literal: bytes | None = None) -> list[str]:
        """
        Send one command (UTF-8), with C{literal} after it as a LITERAL+
        literal if given; return its untagged lines (asserts OK).
        """
        self.n += 1
        tag = f"r{self.n}"
        data = f"{tag} {text}".encode("utf-8")
        if literal is not None:
            data += b" {%d+}\r\n" % len(literal) + literal
        self.imap.send(data + b"\r\n")
        lines = []
        while True:
            line = self.imap.readline().decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith(tag + " "):
                assert line.startswith(tag + " OK"), (text, line, lines)
                return lines
            lines.append(line)

    def append(self, n: int, flags: str = "", mailbox: str = "INBOX") -> None:
        """APPEND a small message numbered C{n}; asserts OK."""
        data = f"From: e2e@example.org\r\nSubject: msg {n}\r\n\r\nbody {n}\r\n".encode()
        self.n += 1
        tag = f"r{self.n}"
        self.imap.send(f"{tag} APPEND {mailbox} ({flags}) {{{len(data)}+}}\r\n".encode()
                       + data + b"\r\n")
        while True:
            line = self.imap.readline().decode()
            if line.startswith(tag + " "):
                assert line.startswith(tag + " OK"), line
                return

    def unsolicited(self, want: int, seconds: float = 20.0) -> list[str]:
        """Read lines sent with no command in progress until C{want} arrived."""
        sock = self.imap.sock
        lines: list[str] = []
        deadline = time.monotonic() + seconds
        while len(lines) < want and time.monotonic() < deadline:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                lines.append(self.imap.readline().decode("utf-8", "replace").rstrip("\r\n"))
            except (socket.timeout, TimeoutError):
                break
        sock.settimeout(60)
        return lines

    def close(self) -> None:
        self.imap.send(b"z LOGOUT\r\n")
        self.imap.shutdown()


def openssl_session(
    args: list[str], commands: list[str], greeting: bool = True, timeout: float = 30
) -> str:
    """
    Run C{openssl s_client ARGS}, send each IMAP command once the previous
    one's tagged answer (or the greeting) has arrived, and return all output.

    @param greeting: wait for C{* OK} first (with C{-starttls imap},
        s_client reads the greeting itself and prints none).
    """
    process = subprocess.Popen(
        ["openssl", "s_client", "-crlf", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = b""
    deadline = time.monotonic() + timeout

    def read_until(pattern: bytes) -> None:
        nonlocal output
        while not re.search(pattern, output):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {pattern!r} from openssl:\n{output.decode(errors='replace')}")
            ready, _, _ = select.select([process.stdout], [], [], remaining)
            if ready:
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(
                        f"openssl ended before {pattern!r}:\n{output.decode(errors='replace')}"
                    )
                output += chunk

    try:
        if greeting:
            read_until(rb"\* OK[^\n]*\n")
        for command in commands:
            tag = re.escape(command.split(" ", 1)[0].encode())
            process.stdin.write(command.encode() + b"\n")
            process.stdin.flush()
            read_until(rb"(^|\n)" + tag + rb" [^\n]*\n")
    finally:
        process.kill()
        process.wait()
    return output.decode(errors="replace")


# -- fixtures (registered by importing them into a conftest.py) -------------


@pytest.fixture(autouse=True)
def _track_daemons():
    STARTED.clear()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        daemons = list(STARTED)
        for value in item.funcargs.values():
            daemon = getattr(value, "daemon", None)
            if isinstance(daemon, Daemon) and daemon not in daemons:
                daemons.append(daemon)
        for daemon in daemons:
            report.sections.append((f"{daemon.name} log ({daemon.log_path})", daemon.log()))


@pytest.fixture(scope="module")
def imapd_server(tmp_path_factory, tls_files):
    """A daemon shared by a test module, configured by L{write_config}."""
    server = start_server(tmp_path_factory.mktemp("imapd"), tls_files)
    yield server
    server.daemon.stop()


@pytest.fixture
def start_imapd(tmp_path, tls_files):
    """Start a daemon of one's own: C{start_imapd(settings)} -> L{Server}."""
    servers = []

    def start(settings: dict | None = None) -> Server:
        root = tmp_path / f"server{len(servers)}"
        root.mkdir()
        servers.append(start_server(root, tls_files, settings))
        return servers[-1]

    yield start
    for server in servers:
        server.daemon.stop()


NGINX = "/usr/sbin/nginx"
NGINX_MAIL_MODULE = "/usr/lib/nginx/modules/ngx_mail_module.so"


def start_nginx_mail(prefix, auth_port: int, proxy_port: int) -> subprocess.Popen:
    """
    A real nginx mail proxy (Debian nginx + libnginx-mod-mail) in
    directory C{prefix}, on 127.0.0.1:C{proxy_port}, asking our auth_http
    on C{auth_port} and sending a PROXY header to the backends; returns
    once it answers IMAP.  The caller terminates it.
    """
    import imaplib

    prefix.mkdir(exist_ok=True)
    (prefix / "nginx.conf").write_text(f"""
load_module {NGINX_MAIL_MODULE};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
worker_processes 1;
events {{ worker_connections 256; }}
mail {{
    auth_http 127.0.0.1:{auth_port}/auth;
    proxy_pass_error_message on;
    server {{
        listen 127.0.0.1:{proxy_port};
        protocol imap;
        proxy_protocol on;
    }}
}}
""")
    nginx = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                              "-e", str(prefix / "error.log"), "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            imaplib.IMAP4("127.0.0.1", proxy_port, timeout=5).logout()
            return nginx
        except OSError:
            if nginx.poll() is not None or time.monotonic() > deadline:
                nginx.kill()
                nginx.wait()
                raise RuntimeError("nginx did not start: "
                                   + (prefix / "error.log").read_text()) from None
            time.sleep(0.1)
