"""
Issue 14 with real processes on a real directory: the shape of the
process tree, faults (SIGKILL of a worker, a login process, the master),
SIGHUP, one worker per user, the TLS relay and pipelining after LOGIN.
"""

from __future__ import annotations

import imaplib
import os
import signal
import socket
import ssl
import threading
import time

import pytest
from e2e_helpers import start_server
from e2e_sessions import RawSession
from proctree import alive, established_to, socket_inodes, titled, tree, wait_for

from imapd.process.wire import pool_index

USERS = {"u1": "pw1", "u2": "pw2", "u3": "pw3", "u4": "pw4"}
SHAPE = {"service": {"login_processes": 2, "mail_workers": 2},
         "limits": {"idle_poll_interval": 60.0, "failed_login_delay": 0.1}}


@pytest.fixture
def start_imapd(tmp_path, tls_files):
    """Start the daemon with L{SHAPE} and L{USERS}; stopped afterwards."""
    started = []

    def start(settings=None):
        merged = {k: dict(v) for k, v in SHAPE.items()}
        for table, values in (settings or {}).items():
            merged.setdefault(table, {}).update(values)
        server = start_server(tmp_path, tls_files, merged, users=USERS)
        started.append(server)
        return server
    yield start
    import e2e_helpers

    # Also a daemon whose start failed (it may still run).
    for daemon in {id(d): d for d in [s.daemon for s in started] + e2e_helpers.STARTED}.values():
        daemon.stop()


def _start(start_imapd, settings=None):
    return start_imapd(settings)


def _children_up(server):
    pid = server.daemon.process.pid
    return wait_for(lambda: len(titled(pid, "imapd: login")) == 2
                    and len(titled(pid, "imapd: worker pool-1")) == 1
                    and len(titled(pid, "imapd: worker pool-2")) == 1
                    and titled(pid, "imapd: auth"), "the children")


def _login(port: int, user: str, tag: str = "l") -> RawSession:
    s = RawSession(port)
    s.ok(tag, f"LOGIN {user} {USERS[user]}")
    return s


def _worker_of(server, user: str):
    (proc,) = titled(server.daemon.process.pid, f"imapd: worker pool-{pool_index(user, 2) + 1}")
    return proc


def _users_by_worker():
    by = {0: [], 1: []}
    for user in USERS:
        by[pool_index(user, 2)].append(user)
    assert by[0] and by[1], by
    return by


def test_process_tree_titles_and_users(start_imapd):
    """master > spawner > auth, login x2, worker pool-1/2; logins run as nobody (root master)."""
    server = _start(start_imapd)
    _children_up(server)
    procs = tree(server.daemon.process.pid)
    titles = sorted(p.title for p in procs)
    assert titles == sorted(["imapd: master", "imapd: spawner", "imapd: auth", "imapd: login",
                             "imapd: login", "imapd: worker pool-1", "imapd: worker pool-2"])
    (spawner,) = [p for p in procs if p.title == "imapd: spawner"]
    assert spawner.ppid == server.daemon.process.pid
    assert all(p.ppid == spawner.pid for p in procs if p.title not in
               ("imapd: master", "imapd: spawner"))
    # The master and the spawner run no thread (the spawner forks).
    for proc in procs:
        if proc.title in ("imapd: master", "imapd: spawner"):
            assert len(os.listdir(f"/proc/{proc.pid}/task")) == 1, proc
    if os.getuid() == 0:
        import pwd

        nobody = pwd.getpwnam("nobody").pw_uid
        assert {p.uid for p in procs if p.title == "imapd: login"} == {nobody}
        assert {p.uid for p in procs if p.title != "imapd: login"} == {0}


def _memory_kb(pid: int) -> dict:
    """C{Rss} and USS (private pages) of C{pid} in kB, from C{/proc/PID/smaps_rollup}."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Private_Clean", "Private_Dirty"):
                fields[name] = int(rest.split()[0])
    return {"rss": fields["Rss"], "uss": fields["Private_Clean"] + fields["Private_Dirty"]}


def test_the_master_shares_its_image_with_the_spawner_and_children(start_imapd):
    """
    The spawner is forked from the master after the master imported what
    every child needs, so most of the master's pages (Python, Twisted, the
    protocol and store modules) are shared with the spawner and every
    child, not a private copy of its own: of a separate interpreter's
    some 34 MB nearly all were private to the master.
    """
    server = _start(start_imapd)
    _children_up(server)
    master = _memory_kb(server.daemon.process.pid)
    assert master["uss"] < master["rss"] / 2, master


def test_two_sessions_of_a_user_share_a_worker(start_imapd):
    """An APPEND in one session wakes the other's IDLE at once (same worker, no polling)."""
    server = _start(start_imapd)
    _children_up(server)
    a = _login(server.port, "u1")
    b = _login(server.port, "u1")
    a.ok("s", "SELECT INBOX")
    a.send("i IDLE")
    a.read_until(lambda d: d.startswith(b"+"), 10)
    started = time.monotonic()
    msg = b"Subject: wake\r\n\r\nup\r\n"
    b.send("p APPEND INBOX {%d+}" % len(msg))
    b.sock.sendall(msg + b"\r\n")
    b.read_until(RawSession.tagged_done("p"), 10)
    a.read_until(lambda d: b"* 1 EXISTS" in d, 5)
    # idle_poll_interval is 60 s: only the shared worker can be this quick.
    assert time.monotonic() - started < 2.0
    a.send("DONE")
    a.read_until(RawSession.tagged_done("i"), 10)
    a.close()
    b.close()


class _Load(threading.Thread):
    """A user's session doing APPEND and FETCH in a loop until stopped."""

    def __init__(self, port: int, user: str) -> None:
        super().__init__(daemon=True)
        self.session = _login(port, user)
        self.session.ok("s", "SELECT INBOX")
        self.stop = threading.Event()
        self.done = 0
        self.error = None

    def run(self) -> None:
        msg = b"Subject: load\r\n\r\n" + b"x" * 2000 + b"\r\n"
        try:
            while not self.stop.is_set():
                self.done += 1
                tag = f"a{self.done}"
                self.session.send(f"{tag} APPEND INBOX {{{len(msg)}+}}")
                self.session.sock.sendall(msg + b"\r\n")
                data = self.session.read_until(RawSession.tagged_done(tag), 20)
                assert data.rsplit(b"\r\n", 2)[-2].startswith(f"{tag} OK".encode()), data
                self.session.ok(f"f{self.done}", "FETCH 1:* (FLAGS)")
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


def _assert_new_login_within(server, user: str, seconds: float) -> float:
    started = time.monotonic()
    while True:
        try:
            s = _login(server.port, user)
            s.ok("n", "NOOP")
            s.close()
            break
        except (AssertionError, OSError, TimeoutError):
            if time.monotonic() - started > 10:
                raise
            time.sleep(0.02)
    took = time.monotonic() - started
    assert took < seconds, f"a new login took {took:.2f}s"
    return took


def test_sigkill_a_worker_under_load(start_imapd):
    server = _start(start_imapd)
    _children_up(server)
    by = _users_by_worker()
    victim_user, other_user = by[0][0], by[1][0]
    victims = [_Load(server.port, victim_user) for _ in range(2)]
    others = [_Load(server.port, other_user) for _ in range(2)]
    for load in victims + others:
        load.start()
    time.sleep(0.5)
    worker = _worker_of(server, victim_user)
    os.kill(worker.pid, signal.SIGKILL)
    _assert_new_login_within(server, victim_user, 1.0)
    time.sleep(0.5)
    for load in victims + others:
        load.stop.set()
    for load in victims + others:
        load.join(30)
    # The killed worker's sessions dropped; the other worker's went on.
    assert all(isinstance(v.error, (ConnectionError, OSError, TimeoutError)) for v in victims), \
        [v.error for v in victims]
    assert [o.error for o in others] == [None, None]
    assert all(o.done > 2 for o in others)
    # A new worker took the place.
    wait_for(lambda: [p for p in titled(server.daemon.process.pid, worker.title)
                      if p.pid != worker.pid], "the new worker")
    assert "imapd: worker pool-1 (pid %d) ended: killed by SIGKILL" % worker.pid in \
        server.daemon.log()


def test_sigkill_a_login_process(start_imapd):
    """
    The TLS sessions the killed login process relays drop, every other
    goes on (plain ones live in workers); a new login works within a second.
    """
    server = _start(start_imapd)
    _children_up(server)
    sessions = [_login(server.port, user) for user in USERS]
    tls_sessions = []
    for _ in range(6):
        imap = imaplib.IMAP4_SSL(server.host, server.tls_port, ssl_context=server.ssl_context())
        imap.login("u1", "pw1")
        tls_sessions.append(imap)
    unauthenticated = [RawSession(server.port) for _ in range(6)]
    logins = titled(server.daemon.process.pid, "imapd: login")
    relayed = len(socket_inodes(logins[0].pid) & established_to(server.tls_port))
    os.kill(logins[0].pid, signal.SIGKILL)
    _assert_new_login_within(server, "u2", 1.0)
    for i, s in enumerate(sessions):
        s.ok(f"n{i}", "NOOP")
    dropped = 0
    for imap in tls_sessions:
        try:
            imap.noop()
        except (imaplib.IMAP4.abort, OSError):
            dropped += 1
    assert dropped == relayed
    # Those not yet logged in that the killed process held are gone; the
    # others can still log in.
    # (Which process accepted which connection is the kernel's choice.)
    outcomes = []
    for s in unauthenticated:
        try:
            s.ok("l", "LOGIN u3 pw3")
            outcomes.append("in")
        except (ConnectionError, OSError):
            outcomes.append("dropped")
    assert len(outcomes) == 6
    wait_for(lambda: len(titled(server.daemon.process.pid, "imapd: login")) == 2,
             "a new login process")


def test_sigkill_the_master_leaves_no_child(start_imapd):
    server = _start(start_imapd)
    _children_up(server)
    s = _login(server.port, "u1")
    s.ok("s", "SELECT INBOX")
    pids = [p.pid for p in tree(server.daemon.process.pid)]
    assert len(pids) == 7
    os.kill(server.daemon.process.pid, signal.SIGKILL)
    server.daemon.process.wait(10)
    wait_for(lambda: not any(alive(pid) for pid in pids), "every child gone", timeout=5)
    s.close()


def test_sighup_reloads_for_new_logins_and_keeps_sessions(start_imapd):
    server = _start(start_imapd)
    _children_up(server)
    old = _login(server.port, "u1")
    old.ok("s", "SELECT INBOX")
    tls_old = imaplib.IMAP4_SSL(server.host, server.tls_port, ssl_context=server.ssl_context())
    tls_old.login("u2", "pw2")
    first_logins = {p.pid for p in titled(server.daemon.process.pid, "imapd: login")}
    # A broken file is refused; the server goes on with what it has.
    text = server.config.read_text()
    server.config.write_text(text + "\n[limits\n")
    os.kill(server.daemon.process.pid, signal.SIGHUP)
    wait_for(lambda: "keeping the configuration in use" in server.daemon.log(), "the refusal")
    _login(server.port, "u3").close()
    # A new passwd-file: u1's new password works for new logins only.
    from imapd.auth.schemes import hash_password

    passwd = server.root / "passwd2"
    passwd.write_text("".join(f"{u}:{hash_password(p + 'new', 'PLAIN')}::::{server.root}/home/{u}::\n"
                              for u, p in USERS.items()))
    server.config.write_text(text.replace('passwd_file = "passwd"', 'passwd_file = "passwd2"'))
    assert 'passwd_file = "passwd2"' in server.config.read_text()
    os.kill(server.daemon.process.pid, signal.SIGHUP)
    wait_for(lambda: "generation 2" in server.daemon.log(), "the reload")
    new = RawSession(server.port)
    new.ok("l", "LOGIN u1 pw1new")
    refused = RawSession(server.port)
    assert b"l NO" in refused.command("l", "LOGIN u1 pw1")
    # Sessions from before the reload go on, in old processes that exit
    # once their sessions end (the TLS one is relayed by an old login process).
    old.ok("n", "NOOP")
    tls_old.noop()
    assert first_logins & {p.pid for p in titled(server.daemon.process.pid, "imapd: login")}
    old.close()
    tls_old.logout()
    wait_for(lambda: not first_logins & {p.pid for p in tree(server.daemon.process.pid)},
             "the old login processes to exit", timeout=20)
    assert len(titled(server.daemon.process.pid, "imapd: login")) == 2
    new.ok("n", "NOOP")


def _big_message(size: int) -> bytes:
    line = b"0123456789" * 7 + b"\r\n"
    return b"Subject: big\r\n\r\n" + line * (size // len(line))


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_tls_relay_large_append_and_fetch(start_imapd, mode):
    server = _start(start_imapd)
    _children_up(server)
    if mode == "implicit":
        imap = imaplib.IMAP4_SSL(server.host, server.tls_port, ssl_context=server.ssl_context())
    else:
        imap = imaplib.IMAP4(server.host, server.port)
        imap.starttls(server.ssl_context())
    imap.login("u4", "pw4")
    imap.select("INBOX")
    message = _big_message(8 * 1024 * 1024)
    typ, _ = imap.append("INBOX", None, None, message)
    assert typ == "OK"
    typ, data = imap.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == message
    imap.logout()


@pytest.mark.parametrize("tls", [False, True])
def test_pipelined_commands_after_login(start_imapd, tls):
    server = _start(start_imapd)
    _children_up(server)
    raw = socket.create_connection((server.host, server.tls_port if tls else server.port), 30)
    if tls:
        raw = server.ssl_context().wrap_socket(raw, server_hostname="localhost")
    buf = b""
    while b"\r\n" not in buf:
        buf += raw.recv(4096)
    msg = b"Subject: piped\r\n\r\nhello\r\n"
    raw.sendall(b"a ID (\"name\" \"test\")\r\nb LOGIN u1 pw1\r\nc SELECT INBOX\r\n"
                b"d APPEND INBOX {%d+}\r\n%s\r\ne FETCH 1:* (BODY[])\r\nf LOGOUT\r\n"
                % (len(msg), msg))
    buf = b""
    while not buf.endswith(b"f OK LOGOUT completed\r\n"):
        chunk = raw.recv(65536)
        if not chunk:
            break
        buf += chunk
    tags = [line.split(b" ", 1)[0] for line in buf.split(b"\r\n") if line[:1] in b"abcdef"
            and line[1:2] == b" "]
    assert tags == [b"a", b"b", b"c", b"d", b"e", b"f"], buf
    assert b"b OK [CAPABILITY " in buf and b"hello" in buf and b"d OK [APPENDUID" in buf
    raw.close()


@pytest.mark.skipif(os.getuid() != 0, reason="serving a system user needs root")  # CI is root
def test_system_user_gets_a_worker_of_its_own(tmp_path, tls_files):
    """
    A passwd-file user with a uid of its own: a worker forked for that
    user, running as its uid, storing mail it owns under ~ (its home),
    gone user_worker_grace seconds after its last session.
    """
    import pwd
    import shutil
    import tempfile

    from e2e_helpers import Daemon, write_config

    account = pwd.getpwnam("games")
    # Outside pytest's private (0700) temporary directory, which the user
    # could not enter.
    top = tempfile.mkdtemp(prefix="imapd-sysuser-", dir="/tmp")
    try:
        os.chmod(top, 0o755)
        home = os.path.join(top, "home")
        os.mkdir(home, 0o700)
        os.chown(home, account.pw_uid, account.pw_gid)
        config, (port, _tls) = write_config(
            tmp_path, tls_files, dict(SHAPE, service={**SHAPE["service"], "user_worker_grace": 1.0},
                                      mail={"location": "maildir:~/Maildir"},
                                      # games is a system account (uid 5)
                                      userdb={"first_valid_uid": 1}), users=USERS)
        with open(tmp_path / "passwd", "a") as f:
            f.write(f"games:{{PLAIN}}gpw:{account.pw_uid}:{account.pw_gid}::{home}::\n")
        daemon = Daemon(["--config", str(config)], tmp_path).start()
        try:
            daemon.wait_for_greeting(port)
            s = RawSession(port)
            s.ok("l", "LOGIN games gpw")
            msg = b"Subject: mine\r\n\r\nowned\r\n"
            s.send("a APPEND INBOX {%d+}" % len(msg))
            s.sock.sendall(msg + b"\r\n")
            assert b"a OK" in s.read_until(RawSession.tagged_done("a"), 30)
            (worker,) = wait_for(lambda: titled(daemon.process.pid, "imapd: worker games 127.0.0.1"),
                                 "the user's worker")
            assert worker.uid == account.pw_uid
            files = [os.path.join(d, n) for d, _s, names in os.walk(os.path.join(home, "Maildir"))
                     for n in names]
            assert files and {os.stat(p).st_uid for p in files} == {account.pw_uid}
            assert any(b"owned" in open(p, "rb").read() for p in files if "/new/" in p or "/cur/" in p)
            # A virtual user is still served by the pool, as root.
            v = _login(port, "u1")
            v.ok("s", "SELECT INBOX")
            v.close()
            s.ok("o", "LOGOUT")
            s.close()
            wait_for(lambda: not alive(worker.pid), "the user's worker to go", timeout=15)
            # The next login gets a new one.
            s = RawSession(port)
            s.ok("l", "LOGIN games gpw")
            s.ok("s", "SELECT INBOX")
            s.close()
        finally:
            daemon.stop()
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_single_process_keeps_one_process(start_imapd):
    """[service] single_process = true: today's server, all in the twistd process."""
    server = _start(start_imapd, {"service": {"single_process": True}})
    s = _login(server.port, "u1")
    s.ok("s", "SELECT INBOX")
    (only,) = tree(server.daemon.process.pid)
    assert "twistd" in only.title and "imapd: master" not in only.title
    s.close()


def test_a_killed_spawner_is_started_again_with_every_child(start_imapd):
    server = _start(start_imapd)
    _children_up(server)
    pid = server.daemon.process.pid
    (spawner,) = titled(pid, "imapd: spawner")
    before = {p.pid for p in tree(pid)} - {pid}
    os.kill(spawner.pid, signal.SIGKILL)
    # Its children die with it (PR_SET_PDEATHSIG) ...
    wait_for(lambda: not any(alive(p) for p in before), "the old children to go", timeout=10)
    # ... and the master starts it again, and them.
    wait_for(lambda: [p for p in titled(pid, "imapd: spawner") if p.pid != spawner.pid],
             "a new spawner")
    _children_up(server)
    _assert_new_login_within(server, "u1", 10.0)
    assert "The spawner ended" in server.daemon.log()


@pytest.mark.skipif(os.getuid() != 0, reason="chroot needs root")  # CI is root
def test_login_processes_in_a_chroot(start_imapd, tmp_path):
    """login_chroot: an empty directory is enough (everything was imported before)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    server = _start(start_imapd, {"service": {"login_chroot": str(empty)}})
    _children_up(server)
    for proc in titled(server.daemon.process.pid, "imapd: login"):
        assert os.readlink(f"/proc/{proc.pid}/root") == str(empty)
    s = RawSession(server.port)
    s.ok("c", "CAPABILITY")
    s.ok("i", 'ID ("name" "chroot test")')
    assert b"x BAD" in s.command("x", "FROB")
    assert b"f NO" in s.command("f", "LOGIN u1 wrong")
    s.ok("a", "AUTHENTICATE PLAIN AHUxAHB3MQ==")  # \0u1\0pw1
    s.ok("s", "SELECT INBOX")
    s.close()
    imap = imaplib.IMAP4(server.host, server.port)
    imap.starttls(server.ssl_context())
    imap.login("u2", "pw2")
    imap.logout()
    imap = imaplib.IMAP4_SSL(server.host, server.tls_port, ssl_context=server.ssl_context())
    imap.login("u3", "pw3")
    imap.logout()
    assert "#error" not in server.daemon.log() and "Traceback" not in server.daemon.log()


@pytest.mark.skipif(os.getuid() != 0, reason="login_user is used only as root")  # CI is root
@pytest.mark.parametrize("service, option", [
    ({"login_user": "no-such-imapd-user"}, "service.login_user"),
    ({"login_chroot": "/nonexistent/chroot"}, "service.login_chroot"),
])
def test_a_missing_login_user_or_chroot_stops_startup(tmp_path, tls_files, service, option):
    from e2e_helpers import run_twistd, write_config

    config, _ = write_config(tmp_path, tls_files, {"service": service})
    result = run_twistd(["--config", str(config)], cwd=tmp_path)
    assert result.returncode != 0
    assert f"imapd: {config}: option '{option}': " in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_authenticate_with_a_continuation_then_pipelined_commands(start_imapd):
    """The SASL response line is the login process's; what follows it, the worker's."""
    server = _start(start_imapd)
    _children_up(server)
    s = RawSession(server.port)
    s.send("a AUTHENTICATE PLAIN")
    s.read_until(lambda d: d.startswith(b"+"), 30)
    s.sock.sendall(b"AHUxAHB3MQ==\r\nb SELECT INBOX\r\nc NOOP\r\n")  # \0u1\0pw1
    data = s.read_until(RawSession.tagged_done("c"), 30)
    assert b"a OK [CAPABILITY " in data and b"b OK [READ-WRITE]" in data, data
    assert data.index(b"a OK") < data.index(b"b OK") < data.index(b"c OK")
    s.close()
