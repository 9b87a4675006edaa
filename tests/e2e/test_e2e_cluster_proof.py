"""
Issue 15's proof, whole: three backends of the default (multi-process)
server on 127.0.0.2, .3 and .4, each with its own index directory, on one
shared Maildir tree and one host table; a real nginx mail proxy in front
(C{proxy_protocol on}, our auth_http); 100 users; a real Postfix asking
our socketmap and delivering over LMTP.

  1. Every user's login through nginx lands on the owner the ring
     predicts, and that backend logs the client's address from the PROXY
     header (the client connects from 127.0.0.9, nginx from 127.0.0.1).
  2. SIGKILL of one backend's master leaves none of its processes; the
     health checks (through the haproxy: listeners, C{PROXY UNKNOWN})
     mark it down within seconds; its users' next logins land on their
     next owner in the ring and see the mail they stored; nobody else
     moves.
  3. Restarted, it is marked up again, and nobody moves back to it: not
     in nginx's routing, not in C{postmap -q}'s answers for all 100
     users, which agree with nginx's; after C{imapd-admin cluster flush}
     of the hosts that took its users, everybody is on the ring's owner.
  4. Postfix, routed by the socketmap, delivers over LMTP to the owner,
     and the user's IDLE session there (through nginx) sees the message
     within a second.

Which backend served a session is read from that backend's log (its
C{login user=... remote=127.0.0.9:...} line).
"""

from __future__ import annotations

import imaplib
import io
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from e2e_helpers import Daemon, daemon_pids, free_ports, start_nginx_mail, toml_text

from imapd.admin import main as admin
from imapd.auth.schemes import hash_password
from imapd.cluster.hashing import user_hash
from imapd.cluster.ring import Ring
from imapd.cluster.table import HostsFile
from tests.delivery.test_postfix import Postfix

BACKENDS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
#: The backend that serves auth_http and the socketmap (a site would run
#: them on every node behind a VIP; one is enough here).
LOOKUP = "127.0.0.2"
#: The backend killed and restarted.
VICTIM = "127.0.0.3"
USERS = {f"user{i}@example.org": f"secret {i}" for i in range(100)}
#: The client's source address: not nginx's, so the logs show which they learnt.
CLIENT = "127.0.0.9"
#: Seconds the health checks may take to notice a dead or returning backend.
HEALTH_BOUND = 15.0


def ring_owner(user: str, hosts=BACKENDS) -> str:
    return Ring((h, 100) for h in hosts).lookup(user_hash(user))


def quiet_admin(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert admin(list(args), out, err) == 0, err.getvalue()
    return out.getvalue()


class Site:
    """The three backends, nginx and the paths and ports that tie them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (self.imap_port, self.direct_port, self.lmtp_port, self.auth_port,
         self.socketmap_port, self.proxy_port) = free_ports(6)
        self.hosts_file = root / "store" / "hosts.json"
        self.admin_conf = root / "admin.toml"
        self.admin_conf.write_text(f'[cluster]\nhosts_file = "{self.hosts_file}"\n')
        self.daemons: dict[str, Daemon] = {}
        self.nginx = None
        passwd = root / "passwd"
        passwd.write_text("".join(
            f"{u}:{hash_password(p, 'PLAIN')}::::{root / 'home' / u}::\n"
            for u, p in USERS.items()))
        for host in BACKENDS:
            quiet_admin("--config", str(self.admin_conf), "cluster", "add", host,
                        "--port", str(self.imap_port), "--lmtp-port", str(self.lmtp_port))
        for address in BACKENDS:
            node = root / address
            node.mkdir()
            cluster = {
                "hosts_file": str(self.hosts_file), "node": address,
                # Every node checks every node, through the haproxy: port
                # nginx uses (so with a PROXY header).
                "health_interval": 0.5, "health_timeout": 5.0, "health_fall": 2,
                "health_rise": 2, "health_proxy_protocol": True,
            }
            if address == LOOKUP:
                cluster["auth_http_listen"] = [f"tcp:{self.auth_port}:interface=127.0.0.1"]
                cluster["socketmap_listen"] = [f"tcp:{self.socketmap_port}:interface=127.0.0.1"]
            (node / "imapd.toml").write_text(toml_text({
                # nginx connects to the haproxy: listener with a PROXY
                # header; the plain one is for the start-up check.
                "listen": [f"haproxy:tcp:{self.imap_port}:interface={address}",
                           f"tcp:{self.direct_port}:interface={address}"],
                "lmtp_listen": [f"tcp:{self.lmtp_port}:interface={address}"],
                "haproxy_trusted_networks": ["127.0.0.0/8"],
                "data_dir": "data",
                "tls": {"enabled": False},
                "auth": {"passwd_file": str(passwd), "allow_plaintext": True},
                # One shared store, an index directory per node (DESIGN.md rule 2).
                "mail": {"location": f"maildir:{root}/mail/%u",
                         "index_dir": str(node / "index")},
                # IDLE's own poll far away: only the delivery's wake-up is quick.
                "limits": {"idle_poll_interval": 30.0},
                "service": {"login_processes": 1, "mail_workers": 1},
                "cluster": cluster,
                "log": {"level": "info"},
            }))

    def start_backend(self, address: str) -> Daemon:
        node = self.root / address
        daemon = Daemon(["--config", str(node / "imapd.toml")], node,
                        f"imapd-{address}").start()
        self.daemons[address] = daemon
        return daemon

    def start(self) -> None:
        for address in BACKENDS:
            self.start_backend(address)
        for address, daemon in self.daemons.items():
            daemon.wait_for_greeting(self.direct_port, host=address)
        self.nginx = start_nginx_mail(self.root / "nginx", self.auth_port, self.proxy_port)

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.terminate()
            self.nginx.wait(15)
        for daemon in self.daemons.values():
            daemon.stop()

    # -- what the backends say -------------------------------------------------

    def logins(self) -> dict[str, list[str]]:
        """Per backend, the users whose logins from CLIENT it logged, in order."""
        pattern = re.compile(rf"\] login user=(\S+) session=\S+ remote={re.escape(CLIENT)}:")
        return {address: pattern.findall(daemon.log())
                for address, daemon in self.daemons.items()}

    def host(self, address: str):
        return HostsFile(str(self.hosts_file)).table().get(address)

    def wait_for_host(self, address: str, up: bool) -> float:
        """Seconds until the table shows C{address} up (or down by health)."""
        started = time.monotonic()
        while True:
            host = self.host(address)
            if host.up == up and (up or host.down_by == "health"):
                return time.monotonic() - started
            assert time.monotonic() - started < HEALTH_BOUND, (address, host)
            time.sleep(0.05)


class FromClient(imaplib.IMAP4):
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(CLIENT, 0))


def session(site: Site, user: str, append: bool = False) -> list[bytes]:
    """
    Log C{user} in through nginx, optionally APPEND a message naming the
    user, and return the subjects of the INBOX's messages.
    """
    client = FromClient("127.0.0.1", site.proxy_port, timeout=30)
    try:
        client.login(user, USERS[user])
        if append:
            message = f"From: proof@example.org\r\nSubject: for {user}\r\n\r\nhello\r\n"
            assert client.append("INBOX", None, None, message.encode())[0] == "OK"
        typ, data = client.select("INBOX", readonly=True)
        assert typ == "OK", data
        if int(data[0]) == 0:
            return []
        typ, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [part[1].strip() for part in data if isinstance(part, tuple)]
    finally:
        client.logout()


def login_round(site: Site, users, append: bool = False) -> tuple[dict, dict]:
    """
    Each of C{users} logs in once (four at a time); return (user ->
    backend that logged the login, user -> subjects it saw).
    """
    before = {a: len(found) for a, found in site.logins().items()}
    with ThreadPoolExecutor(4) as pool:
        seen = dict(zip(users, pool.map(lambda u: session(site, u, append), users)))
    deadline = time.monotonic() + 10
    while True:
        new = {a: found[before.get(a, 0):] for a, found in site.logins().items()}
        if sum(map(len, new.values())) >= len(users) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    landed: dict[str, list[str]] = {}
    for address, found in new.items():
        for user in found:
            landed.setdefault(user, []).append(address)
    # Each login was logged once, by one backend.
    assert all(len(v) == 1 for v in landed.values()), landed
    assert sorted(landed) == sorted(users)
    return {u: v[0] for u, v in landed.items()}, seen


def postmap(site: Site, users) -> dict[str, str]:
    """Postfix's own socketmap client: C{postmap -q - socketmap:...:transport}."""
    config = site.root / "postmap"
    config.mkdir(exist_ok=True)
    (config / "main.cf").write_text("compatibility_level = 3.6\n")
    result = subprocess.run(
        ["postmap", "-c", str(config), "-q", "-",
         f"socketmap:inet:127.0.0.1:{site.socketmap_port}:transport"],
        input="".join(f"{u}\n" for u in users), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return dict(line.split("\t", 1) for line in result.stdout.splitlines())


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


#: Seconds the whole proof may take (start-up, both tests, shut-down).
PROOF_BOUND = 180


def _overran(signum, frame):
    raise TimeoutError(f"the issue 15 proof took over {PROOF_BOUND} seconds")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    # Bounded in time: every wait below has its own deadline, and this
    # alarm bounds their sum (a blocking read is interrupted too).
    previous = signal.signal(signal.SIGALRM, _overran)
    signal.alarm(PROOF_BOUND)
    site = Site(tmp_path_factory.mktemp("cluster-proof"))
    try:
        site.start()
        yield site
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        site.stop()


#: CLUSTER.md's vectors (checked there against a running Dovecot 2.3.19
#: director) for these three backends: user -> (owner, owner with .3 down).
VECTORS = {"alice": ("127.0.0.3", "127.0.0.4"), "erin": ("127.0.0.3", "127.0.0.2"),
           "heidi": ("127.0.0.4", "127.0.0.4"), "Dave@INFN.it": ("127.0.0.2", "127.0.0.2"),
           "user620": ("127.0.0.3", "127.0.0.2")}


def test_routing_failover_restart_and_postmap(site):
    # The owners predicted below are Dovecot's, for both ring states used.
    survivors = tuple(h for h in BACKENDS if h != VICTIM)
    assert {u: (ring_owner(u), ring_owner(u, survivors)) for u in VECTORS} == VECTORS
    users = sorted(USERS)
    expected = {u: ring_owner(u) for u in users}
    assert set(expected.values()) == set(BACKENDS)

    # 1. Everybody lands on the ring's owner; each stores a message there.
    landed, seen = login_round(site, users, append=True)
    assert landed == expected
    assert all(seen[u] == [f"Subject: for {u}".encode()] for u in users)
    # One shared mail tree; each backend's index in its own directory.
    assert sorted(p.name for p in (site.root / "mail").iterdir()) == users
    for address in BACKENDS:
        assert any((site.root / address / "index").rglob("*")), address

    # 2. SIGKILL the victim's master: no process of it survives.
    victim = site.daemons[VICTIM]
    pids = daemon_pids(victim.process.pid)
    assert len(pids) > 3, pids  # master, spawner, auth, login, worker, services
    killed = time.monotonic()
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(15)
    deadline = time.monotonic() + 10
    while [p for p in pids if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if alive(p)] == []
    site.wait_for_host(VICTIM, up=False)
    down_after = time.monotonic() - killed
    print(f"{VICTIM} marked down {down_after:.2f}s after SIGKILL")
    assert down_after < HEALTH_BOUND

    moved = [u for u in users if expected[u] == VICTIM]
    after_kill = {u: expected[u] if expected[u] != VICTIM else ring_owner(u, survivors)
                  for u in users}
    assert moved and {after_kill[u] for u in moved} == set(survivors)
    landed, seen = login_round(site, users)
    assert landed == after_kill
    # All their mail, on the node that now serves them.
    assert all(seen[u] == [f"Subject: for {u}".encode()] for u in users)

    # 3. Restart: the checks bring it back up; nobody moves back to it.
    site.start_backend(VICTIM).wait_for_greeting(site.direct_port, host=VICTIM)
    site.wait_for_host(VICTIM, up=True)
    landed, _ = login_round(site, users)
    assert landed == after_kill
    assert VICTIM not in landed.values()
    # Postfix's view of the 100 users is nginx's routing.
    answers = postmap(site, [u for u in users])
    assert answers == {u: f"lmtp:inet:{landed[u]}:{site.lmtp_port}" for u in users}

    # Until the hosts that took its users are flushed: then the ring decides.
    for host in survivors:
        quiet_admin("--config", str(site.admin_conf), "cluster", "flush", host)
    landed, _ = login_round(site, users)
    assert landed == expected
    answers = postmap(site, users)
    assert answers == {u: f"lmtp:inet:{expected[u]}:{site.lmtp_port}" for u in users}


def idle_through_nginx(site: Site, user: str) -> FromClient:
    client = FromClient("127.0.0.1", site.proxy_port, timeout=30)
    client.login(user, USERS[user])
    client.select("INBOX")
    client.send(b"i1 IDLE\r\n")
    assert client.readline().startswith(b"+ "), "no IDLE continuation"
    return client


def test_postfix_delivers_to_the_owner_and_idle_sees_it(site):
    """
    Postfix asks the socketmap for a user of the restarted backend, delivers
    over LMTP there (and nowhere else), and the user's IDLE session on that
    backend, reached through nginx, sees the message within a second.
    """
    user = sorted(u for u in USERS if ring_owner(u) == VICTIM)[-1]
    owner = quiet_admin("--config", str(site.admin_conf), "cluster", "owner", user).strip()
    assert owner == VICTIM
    shared = Path(tempfile.mkdtemp(prefix="imapd-proof-postfix-"))
    shared.chmod(0o755)  # Postfix's daemons run as the postfix user
    (smtp_port,) = free_ports(1)
    postfix = Postfix(shared, smtp_port, {"example.org": ""},
                      transport_maps=f"socketmap:inet:127.0.0.1:{site.socketmap_port}:transport")
    client = None
    try:
        postfix.start()
        client = idle_through_nginx(site, user)
        deadline = time.monotonic() + 10
        while not site.logins()[VICTIM].count(user) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert site.logins()[VICTIM].count(user), "the IDLE session is not on the owner"
        started = time.monotonic()
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
            smtp.sendmail("sender@outside.test", [user],
                          f"Subject: via postfix to {user}\r\n\r\nhello\r\n".encode())
        client.sock.settimeout(15)
        line = client.readline()
        elapsed = time.monotonic() - started
        assert re.match(rb"\* \d+ EXISTS\r\n", line), (line, postfix.maillog())
        print(f"IDLE on {VICTIM} saw the message {elapsed:.3f}s after the SMTP submission")
        assert elapsed < 1.0, (elapsed, postfix.maillog())
        client.send(b"DONE\r\n")
        # Delivered by the owner's LMTP, and only there.
        log = postfix.maillog()
        assert f"relay={VICTIM}[{VICTIM}]:{site.lmtp_port}" in log, log
        delivered = {a: f"Delivered to {user} " in d.log() for a, d in site.daemons.items()}
        assert delivered == {a: a == VICTIM for a in BACKENDS}
    finally:
        if client is not None:
            try:
                client.shutdown()
            except OSError:
                pass
        postfix.stop()
        if os.environ.get("KEEP_POSTFIX") is None:
            shutil.rmtree(shared, ignore_errors=True)
