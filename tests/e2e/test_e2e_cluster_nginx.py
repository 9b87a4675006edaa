"""
A real nginx mail proxy (Debian nginx + libnginx-mod-mail, on its own
configuration and a free loopback port) in front of two real backends on
one shared Maildir tree, asking our auth_http service: each login lands on
the backend the ring predicts, and after `cluster down` on the next one.  nginx
sends a PROXY header (`proxy_protocol on`): the backends log the client's
address, not nginx's.
"""

from __future__ import annotations

import imaplib
import io
import re
import time

import pytest
from e2e_helpers import Daemon, free_ports, start_nginx_mail, toml_text

from imapd.admin import main as admin
from imapd.auth.schemes import hash_password
from imapd.cluster.hashing import user_hash
from imapd.cluster.ring import Ring

BACKENDS = ("127.0.0.3", "127.0.0.4")
USERS = {f"user{i}": f"secret {i}" for i in range(12)}


def owner(user: str, hosts=BACKENDS) -> str:
    return Ring((h, 100) for h in hosts).lookup(user_hash(user))


@pytest.fixture
def site(tmp_path):
    imap_port, auth_port, proxy_port, direct_port = free_ports(4)
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(f"{u}:{hash_password(p, 'PLAIN')}::::{tmp_path / 'home' / u}::\n"
                              for u, p in USERS.items()))
    hosts_file = tmp_path / "store" / "hosts.json"
    admin_conf = tmp_path / "admin.toml"
    admin_conf.write_text(f'[cluster]\nhosts_file = "{hosts_file}"\n')
    for host in BACKENDS:
        assert admin(["--config", str(admin_conf), "cluster", "add", host, "--port",
                      str(imap_port)], io.StringIO(), io.StringIO()) == 0
    daemons = {}
    for address in BACKENDS:
        root = tmp_path / address
        root.mkdir()
        settings = {
            # nginx connects to the haproxy: listener with a PROXY header;
            # the plain one is for the start-up check.
            "listen": [f"haproxy:tcp:{imap_port}:interface={address}",
                       f"tcp:{direct_port}:interface={address}"],
            "haproxy_trusted_networks": ["127.0.0.0/8"],
            "data_dir": "data",
            "tls": {"enabled": False},
            "auth": {"passwd_file": str(passwd), "allow_plaintext": True},
            # One shared store, an index directory per node (DESIGN.md rule 2).
            "mail": {"location": f"maildir:{tmp_path}/mail/%u", "index_dir": "index"},
            "log": {"level": "info"},
        }
        if address == BACKENDS[0]:
            settings["cluster"] = {
                "hosts_file": str(hosts_file), "node": address,
                "auth_http_listen": [f"tcp:{auth_port}:interface=127.0.0.1"]}
        (root / "imapd.toml").write_text(toml_text(settings))
        daemons[address] = Daemon(["--config", str(root / "imapd.toml")], root,
                                  f"imapd-{address}").start()
    for address, daemon in daemons.items():
        daemon.wait_for_greeting(direct_port, host=address)
    prefix = tmp_path / "nginx"
    nginx = start_nginx_mail(prefix, auth_port, proxy_port)
    yield proxy_port, daemons, admin_conf, prefix
    nginx.terminate()
    nginx.wait(15)
    for daemon in daemons.values():
        daemon.stop()


#: The client's source address: not nginx's, so the backend's log shows
#: which one it learnt.
CLIENT = "127.0.0.9"


class FromClient(imaplib.IMAP4):
    def _create_socket(self, timeout):
        import socket

        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(CLIENT, 0))


def login_through(proxy_port: int, user: str) -> list:
    client = FromClient("127.0.0.1", proxy_port, timeout=30)
    try:
        client.login(user, USERS[user])
        return list(client.select("INBOX"))
    finally:
        client.logout()


def logged_in_on(daemons, user: str) -> list[str]:
    return [address for address, d in daemons.items()
            if re.search(rf"\] login user={user} session=\S+ remote={re.escape(CLIENT)}:",
                         d.log())]


def wait_for_log(daemons, user: str) -> list[str]:
    deadline = time.monotonic() + 10
    while not logged_in_on(daemons, user) and time.monotonic() < deadline:
        time.sleep(0.05)
    return logged_in_on(daemons, user)


def test_logins_land_on_the_owner(site):
    """
    Every user's login through nginx reaches the backend the ring names,
    which logs the client's address from the PROXY header.
    """
    proxy_port, daemons, admin_conf, _ = site
    expected = {u: owner(u) for u in USERS}
    assert set(expected.values()) == set(BACKENDS)  # both backends are used
    for user in USERS:
        assert login_through(proxy_port, user)[0] == "OK"
        assert wait_for_log(daemons, user) == [expected[user]], user


def test_down_host_sends_users_to_the_next(site):
    """After `cluster down` of a user's owner, its next login lands on the other."""
    proxy_port, daemons, admin_conf, _ = site
    user = next(u for u in USERS if owner(u) == BACKENDS[1])
    assert admin(["--config", str(admin_conf), "cluster", "down", BACKENDS[1]],
                 io.StringIO(), io.StringIO()) == 0
    assert login_through(proxy_port, user)[0] == "OK"
    assert wait_for_log(daemons, user) == [BACKENDS[0]]


def test_wrong_password_is_refused_by_the_proxy(site):
    """A wrong password never reaches a backend: nginx answers NO."""
    proxy_port, daemons, _, _ = site
    client = imaplib.IMAP4("127.0.0.1", proxy_port, timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login("user1", "wrong")
    assert logged_in_on(daemons, "user1") == []
