"""
Proxy-when-not-ours with two real nodes on one shared Maildir tree: a
login that lands on the node that does not own the user is relayed to the
owner, which serves it and logs the client's own address; a login on the
owner is served there.  Both process shapes: the default multi-process
server (its login process relays) and C{single_process}.  In the
multi-process server, TLS clients (implicit and STARTTLS) are relayed too,
and commands pipelined after the LOGIN reach the owner.
"""

from __future__ import annotations

import imaplib
import io
import socket
import time

import pytest
from e2e_helpers import Daemon, free_ports, toml_text

from imapd.admin import main as admin
from imapd.auth.schemes import hash_password
from imapd.cluster.hashing import user_hash
from imapd.cluster.ring import Ring

NODES = ("127.0.0.3", "127.0.0.4")
USERS = {f"user{i}": f"pw {i}" for i in range(12)}
CLIENT = "127.0.0.9"


def owner(user: str) -> str:
    return Ring((h, 100) for h in NODES).lookup(user_hash(user))


class FromClient(imaplib.IMAP4):
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(CLIENT, 0))


@pytest.fixture(params=["multi-process", "single-process"])
def nodes(request, tmp_path, tls_files):
    for port, daemons, root, _tls_port in start_nodes(tmp_path, tls_files,
                                                     request.param == "single-process"):
        yield port, daemons, root


@pytest.fixture
def multi_nodes(tmp_path, tls_files):
    """The default server (multi-process), with TLS listeners too."""
    yield from start_nodes(tmp_path, tls_files, False)


@pytest.fixture(params=["multi-process", "single-process"])
def secure_nodes(request, tmp_path):
    """
    Nodes that refuse logins without TLS (allow_plaintext false), whose
    certificate names their addresses, relaying with relay_tls.
    """
    import subprocess

    cert, key = tmp_path / "nodes.pem", tmp_path / "nodes.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=imapd nodes", "-keyout", str(key), "-out", str(cert),
                    "-addext", "subjectAltName=" + ",".join(f"IP:{n}" for n in NODES)],
                   check=True, capture_output=True)
    yield from start_nodes(tmp_path, (str(cert), str(key)),
                           request.param == "single-process", relay_tls=True)


def _node_certificate(tmp_path, name: str, addresses) -> tuple[str, str]:
    import subprocess

    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
                    "-addext", "subjectAltName=" + ",".join(f"IP:{n}" for n in addresses)],
                   check=True, capture_output=True)
    return str(cert), str(key)


@pytest.fixture(params=["another CA", "another address"])
def mistrusted_nodes(request, tmp_path):
    """
    Nodes relaying with relay_tls whose certificates do not check: signed
    by another authority than relay_tls_ca, or naming other addresses.
    """
    if request.param == "another CA":
        served = _node_certificate(tmp_path, "nodes", NODES)
        trusted = _node_certificate(tmp_path, "elsewhere", NODES)[0]
    else:
        served = _node_certificate(tmp_path, "nodes", ["127.0.0.99"])
        trusted = served[0]
    yield from start_nodes(tmp_path, served, False, relay_tls=True, relay_ca=trusted)


@pytest.fixture(params=["multi-process", "single-process"])
def looping_nodes(request, tmp_path, tls_files):
    """Two nodes whose tables disagree: each says the other owns everybody."""
    yield from start_nodes(tmp_path, tls_files, request.param == "single-process",
                           looping=True)


def start_nodes(tmp_path, tls_files, single_process: bool, relay_tls: bool = False,
                looping: bool = False, relay_ca: str | None = None):
    port, direct, tls_port = free_ports(3)
    cert, key = tls_files
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(f"{u}:{hash_password(p, 'PLAIN')}::::{tmp_path / 'home' / u}::\n"
                              for u, p in USERS.items()))
    hosts_file = tmp_path / "store" / "hosts.json"
    conf = tmp_path / "admin.toml"
    conf.write_text(f'[cluster]\nhosts_file = "{hosts_file}"\n')
    tables = {node: hosts_file for node in NODES}
    if looping:
        # A table of its own for each node, holding only the other node.
        tables = {node: tmp_path / "store" / f"hosts-{node}.json" for node in NODES}
    for node in NODES:
        if looping:
            other = next(n for n in NODES if n != node)
            conf.write_text(f'[cluster]\nhosts_file = "{tables[other]}"\n')
        assert admin(["--config", str(conf), "cluster", "add", node, "--port", str(port)],
                     io.StringIO(), io.StringIO()) == 0
    daemons = {}
    for node in NODES:
        root = tmp_path / node
        root.mkdir()
        hosts_file = tables[node]
        (root / "imapd.toml").write_text(toml_text({
            "listen": [f"tcp:{port}:interface={node}", f"tcp:{direct}:interface={node}",
                       f"tls:{tls_port}:interface={node}"],
            "haproxy_trusted_networks": ["127.0.0.0/8"],
            "data_dir": "data",
            "tls": {"cert": cert, "key": key},
            "auth": {"passwd_file": str(passwd), "allow_plaintext": not relay_tls},
            "mail": {"location": f"maildir:{tmp_path}/mail/%u", "index_dir": "index"},
            "log": {"level": "info"},
            "cluster": {"hosts_file": str(hosts_file), "node": node, "relay": True,
                        **({"relay_tls": True, "relay_tls_ca": relay_ca or cert}
                           if relay_tls else {})},
            "service": ({"single_process": True} if single_process
                        else {"login_processes": 1, "mail_workers": 1}),
        }))
        daemons[node] = Daemon(["--config", str(root / "imapd.toml")], root,
                               f"imapd-{node}").start()
    for node, daemon in daemons.items():
        daemon.wait_for_greeting(direct, host=node)
    try:
        yield port, daemons, tmp_path, tls_port
    finally:
        for daemon in daemons.values():
            daemon.stop()


def wait_for(daemon, pattern: str) -> bool:
    deadline = time.monotonic() + 10
    while pattern not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    return pattern in daemon.log()


def test_login_on_the_other_node_is_relayed(nodes):
    """The owner serves the session; the first node only passes bytes."""
    port, daemons, root = nodes
    user = next(u for u in USERS if owner(u) == NODES[1])
    client = FromClient(NODES[0], port, timeout=30)
    typ, data = client.login(user, USERS[user])
    assert typ == "OK"
    assert client.select("INBOX")[0] == "OK"
    message = b"Subject: relayed\r\n\r\nthrough the other node\r\n"
    assert client.append("INBOX", None, None, message)[0] == "OK"
    typ, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"relayed" in data[0][1]
    client.logout()
    assert wait_for(daemons[NODES[0]], f"relayed user={user} ")
    assert wait_for(daemons[NODES[1]], f"login user={user} ")
    # The owner logged the client's address, sent in ID by the relay.
    assert f"login user={user} " in daemons[NODES[1]].log()
    line = next(l for l in daemons[NODES[1]].log().splitlines() if f"login user={user} " in l)
    assert f"remote={CLIENT}:" in line
    assert f"login user={user} " not in daemons[NODES[0]].log()
    assert len(list((root / "mail" / user / "new").iterdir())
               + list((root / "mail" / user / "cur").iterdir())) == 1


def test_login_on_the_owner_is_served_there(nodes):
    """No relay when the user lands on its owner."""
    port, daemons, _ = nodes
    user = next(u for u in USERS if owner(u) == NODES[0])
    client = FromClient(NODES[0], port, timeout=30)
    client.login(user, USERS[user])
    assert client.select("INBOX")[0] == "OK"
    client.logout()
    assert wait_for(daemons[NODES[0]], f"login user={user} ")
    assert "relayed user=" not in daemons[NODES[0]].log()


def test_wrong_password_is_refused_without_a_relay(nodes):
    """The password is checked where the client landed; nothing is relayed."""
    port, daemons, _ = nodes
    user = next(u for u in USERS if owner(u) == NODES[1])
    client = FromClient(NODES[0], port, timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login(user, "wrong")
    assert "relayed user=" not in daemons[NODES[0]].log()


def test_owner_unreachable_is_a_temporary_failure(nodes):
    """The owner is gone (not yet marked down): NO [UNAVAILABLE], not a wrong password."""
    port, daemons, _ = nodes
    daemons[NODES[1]].stop()
    user = next(u for u in USERS if owner(u) == NODES[1])
    client = FromClient(NODES[0], port, timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[UNAVAILABLE\]"):
        client.login(user, USERS[user])
    # The connection stays usable: a user owned here logs in on it.
    local = next(u for u in USERS if owner(u) == NODES[0])
    assert client.login(local, USERS[local])[0] == "OK"
    client.logout()


def relayed_to_owner(daemons, user: str) -> None:
    """The first node relayed C{user}'s login; the owner served it."""
    assert wait_for(daemons[NODES[0]], f"relayed user={user} ")
    assert wait_for(daemons[NODES[1]], f"login user={user} ")
    assert f"login user={user} " not in daemons[NODES[0]].log()


def test_tls_clients_are_relayed(multi_nodes, tls_files):
    """
    Implicit TLS and STARTTLS clients of the node that does not own them
    are relayed (TLS ends in the login process; the owner gets the plain
    session).
    """
    import ssl

    port, daemons, _, tls_port = multi_nodes
    users = [u for u in USERS if owner(u) == NODES[1]][:2]
    context = ssl.create_default_context(cafile=tls_files[0])
    context.check_hostname = False
    implicit = imaplib.IMAP4_SSL(NODES[0], tls_port, ssl_context=context, timeout=30)
    assert implicit.login(users[0], USERS[users[0]])[0] == "OK"
    assert implicit.select("INBOX")[0] == "OK"
    assert implicit.append("INBOX", None, None, b"Subject: tls\r\n\r\nover TLS\r\n")[0] == "OK"
    implicit.logout()
    relayed_to_owner(daemons, users[0])
    starttls = FromClient(NODES[0], port, timeout=30)
    starttls.starttls(context)
    assert starttls.login(users[1], USERS[users[1]])[0] == "OK"
    assert starttls.select("INBOX")[0] == "OK"
    starttls.logout()
    relayed_to_owner(daemons, users[1])


def pipelined(port: int, login: bytes, message: bytes) -> dict:
    """
    C{login}, SELECT, APPEND (a LITERAL+ literal) and LOGOUT in one write
    to the first node; the tagged lines by tag.
    """
    with socket.create_connection((NODES[0], port), timeout=30,
                                  source_address=(CLIENT, 0)) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"* OK")
        s.sendall(b"a " + login + b"\r\nb SELECT INBOX\r\n"
                  + b"c APPEND INBOX {%d+}\r\n%s\r\nd LOGOUT\r\n" % (len(message), message))
        tagged = {}
        while len(tagged) < 4:
            line = f.readline()
            assert line, tagged
            if line[:2] in (b"a ", b"b ", b"c ", b"d "):
                tagged[line[:1]] = line
    return tagged


def stored(root, user: str) -> int:
    return len(list((root / "mail" / user / "new").iterdir())
               + list((root / "mail" / user / "cur").iterdir()))


@pytest.mark.parametrize("sasl", [False, True], ids=["LOGIN", "AUTHENTICATE"])
def test_pipelined_commands_after_login_reach_the_owner(nodes, sasl):
    """
    LOGIN (or AUTHENTICATE PLAIN with an initial response), SELECT, APPEND
    and LOGOUT in one write to the node that does not own the user: every
    command is answered, by the owner, in both server shapes.
    """
    import base64

    port, daemons, root = nodes
    user = [u for u in USERS if owner(u) == NODES[1]][int(sasl)]
    if sasl:
        login = b"AUTHENTICATE PLAIN " + base64.b64encode(
            b"\0%s\0%s" % (user.encode(), USERS[user].encode()))
    else:
        login = b'LOGIN "%s" "%s"' % (user.encode(), USERS[user].encode())
    tagged = pipelined(port, login, b"Subject: pipelined\r\n\r\nall at once\r\n")
    assert all(v.split()[1] == b"OK" for v in tagged.values()), tagged
    relayed_to_owner(daemons, user)
    assert stored(root, user) == 1


def test_authenticate_plain_with_a_continuation_is_relayed(nodes):
    """
    AUTHENTICATE PLAIN without an initial response (the client answers
    the empty challenge) on the node that does not own the user, with an
    authorization identity: the owner serves the session.
    """
    port, daemons, _ = nodes
    user = [u for u in USERS if owner(u) == NODES[1]][2]
    client = FromClient(NODES[0], port, timeout=30)
    typ, _ = client.authenticate(
        "PLAIN", lambda _challenge: f"{user}\0{user}\0{USERS[user]}".encode())
    assert typ == "OK"
    assert client.select("INBOX")[0] == "OK"
    client.logout()
    relayed_to_owner(daemons, user)


def test_relay_says_starttls_to_the_owner(secure_nodes):
    """
    Owners refuse logins without TLS: with relay_tls the relay says
    STARTTLS first (and checks the owner's certificate against its
    address), so a TLS client of the other node is served by the owner.
    """
    import ssl

    port, daemons, root, tls_port = secure_nodes
    cert = root / "nodes.pem"
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    user = next(u for u in USERS if owner(u) == NODES[1])
    client = imaplib.IMAP4_SSL(NODES[0], tls_port, ssl_context=context, timeout=30)
    assert client.login(user, USERS[user])[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    client.logout()
    relayed_to_owner(daemons, user)
    line = next(l for l in daemons[NODES[1]].log().splitlines() if f"login user={user} " in l)
    assert "tls=True" in line, line


def test_a_certificate_that_does_not_check_stops_the_relay(mistrusted_nodes):
    """
    relay_tls checks the owner's certificate against relay_tls_ca and the
    owner's address before the password goes out: a certificate of another
    authority, or of other addresses, ends the relay with NO [UNAVAILABLE]
    (a temporary failure, not a wrong password), a log line naming the
    certificate, and no login at the owner.
    """
    import ssl

    port, daemons, root, tls_port = mistrusted_nodes
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    user = next(u for u in USERS if owner(u) == NODES[1])
    client = imaplib.IMAP4_SSL(NODES[0], tls_port, ssl_context=context, timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[UNAVAILABLE\]"):
        client.login(user, USERS[user])
    client.logout()
    assert wait_for(daemons[NODES[0]], f"Cannot relay {user!r} to {NODES[1]}")
    line = next(l for l in daemons[NODES[0]].log().splitlines()
                if f"Cannot relay {user!r}" in l)
    assert "certificate" in line.lower(), line
    # The owner saw a TLS handshake fail, never the login (nor the password).
    time.sleep(0.5)
    assert f"login user={user} " not in daemons[NODES[1]].log()
    assert f"relayed user={user} " not in daemons[NODES[0]].log()


def test_a_relay_loop_ends_by_its_ttl(looping_nodes):
    """
    Each node's table says the other owns the user (two nodes briefly
    disagreeing): the login goes back and forth, each hop lowering
    x-proxy-ttl from 5, and the node that gets it with 0 serves it; the
    client is logged in and never notices.  (The relays connect from
    127.0.0.1, no node of either table, so only the TTL stops the loop.)
    """
    port, daemons, _, _ = looping_nodes
    user = next(iter(USERS))
    client = FromClient(NODES[0], port, timeout=30)
    assert client.login(user, USERS[user])[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    client.logout()
    # .3 -> .4 (ttl 4) -> .3 (3) -> .4 (2) -> .3 (1) -> .4 (0): served.
    assert wait_for(daemons[NODES[1]], f"login user={user} ")
    assert f"login user={user} " not in daemons[NODES[0]].log()
    relays = {n: d.log().count(f"relayed user={user} ") for n, d in daemons.items()}
    assert relays == {NODES[0]: 3, NODES[1]: 2}


def test_no_hops_left_is_served_where_it_lands(nodes):
    """
    A login whose trusted proxy says x-proxy-ttl 0 is not relayed again
    (the loop guard), though another node owns the user.
    """
    port, daemons, _ = nodes
    user = next(u for u in USERS if owner(u) == NODES[1])
    client = FromClient(NODES[0], port, timeout=30)
    typ, _ = client.xatom("ID", '("x-originating-ip" "192.0.2.7" "x-proxy-ttl" "0")')
    assert typ == "OK"
    assert client.login(user, USERS[user])[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    client.logout()
    assert wait_for(daemons[NODES[0]], f"login user={user} ")
    assert "relayed user=" not in daemons[NODES[0]].log()
