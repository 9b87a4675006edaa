"""
The cluster lookup services in the real daemon: the Postfix socketmap
server asked by Python and by Postfix's own postmap, and the nginx
auth_http service asked over HTTP as nginx asks, all agreeing with the
ring of CLUSTER.md.
"""

from __future__ import annotations

import io
import socket
import subprocess
import urllib.request

import pytest
from e2e_helpers import PASSWORD, free_ports

from imapd.admin import main as admin
from imapd.cluster.hashing import user_hash
from imapd.cluster.ring import Ring

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
USERS = [f"user{i}@example.org" for i in range(100)]


def host_table(tmp_path, *add_args: str, extra: str = ""):
    """A 3-host table made with imapd-admin: (its admin config, the table file)."""
    hosts_file = tmp_path / "store" / "hosts.json"
    conf = tmp_path / "admin.toml"
    conf.write_text(f'[cluster]\nhosts_file = "{hosts_file}"\n{extra}')
    for host in HOSTS:
        assert admin(["--config", str(conf), "cluster", "add", host, *add_args],
                     io.StringIO(), io.StringIO()) == 0
    return conf, hosts_file


def owner_line(conf, user: str) -> str:
    out = io.StringIO()
    assert admin(["--config", str(conf), "cluster", "owner", "-v", user],
                 out, io.StringIO()) == 0
    return out.getvalue()


@pytest.fixture
def cluster(start_imapd, tmp_path):
    """A daemon serving socketmap and auth_http over a 3-host table."""
    socketmap_port, auth_port = free_ports(2)
    conf, hosts_file = host_table(tmp_path, "--port", "10143")
    server = start_imapd({"cluster": {
        "hosts_file": str(hosts_file),
        "node": "node1",
        "socketmap_listen": [f"tcp:{socketmap_port}:interface=127.0.0.1"],
        "auth_http_listen": [f"tcp:{auth_port}:interface=127.0.0.1"],
    }})
    return server, socketmap_port, auth_port, conf


def netstring(text: str) -> bytes:
    data = text.encode()
    return b"%d:%s," % (len(data), data)


def read_netstring(f) -> str:
    length = b""
    while (c := f.read(1)) != b":":
        assert c.isdigit(), (length, c)
        length += c
    data = f.read(int(length))
    assert f.read(1) == b","
    return data.decode()


def expected_owner(user: str) -> str:
    return Ring((h, 100) for h in HOSTS).lookup(user_hash(user))


def test_socketmap_python_client(cluster):
    """100 addresses on one connection: each answer is the ring's owner."""
    _, port, _, _ = cluster
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rb")
        s.sendall(b"".join(netstring(f"transport {u}") for u in USERS))
        replies = [read_netstring(f) for _ in USERS]
    assert replies == [f"OK lmtp:inet:{expected_owner(u)}:24" for u in USERS]
    assert len({r for r in replies}) == 3


def test_postmap_agrees(cluster, tmp_path):
    """Postfix's own client: postmap -q USER socketmap:inet:...:transport."""
    _, port, _, _ = cluster
    config_dir = tmp_path / "postfix"
    config_dir.mkdir()
    (config_dir / "main.cf").write_text("compatibility_level = 3.6\n")
    for user in ("alice@example.org", "Dave@INFN.it", "user620@example.org", "nobody.org"):
        result = subprocess.run(
            ["postmap", "-c", str(config_dir), "-q", user,
             f"socketmap:inet:127.0.0.1:{port}:transport"],
            capture_output=True, text=True, timeout=60)
        if "@" in user:
            assert (result.returncode, result.stdout) == \
                (0, f"lmtp:inet:{expected_owner(user.lower())}:24\n"), result.stderr
        else:
            assert (result.returncode, result.stdout) == (1, ""), result.stderr


def auth_http(port: int, **headers) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/auth", headers={
        k.replace("_", "-"): v for k, v in headers.items()})
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(response.headers)


def test_auth_http_answers_the_owner(cluster):
    """A good login is sent to the owner; a bad one waits and is refused."""
    server, _, port, conf = cluster
    escaped = urllib.request.quote(PASSWORD)
    headers = auth_http(port, Auth_Method="plain", Auth_User=server.user, Auth_Pass=escaped,
                        Auth_Protocol="imap", Auth_Login_Attempt="1", Client_IP="192.0.2.1")
    assert (headers["Auth-Status"], headers["Auth-Server"], headers["Auth-Port"]) == \
        ("OK", expected_owner(server.user), "10143")
    headers = auth_http(port, Auth_Method="plain", Auth_User=server.user, Auth_Pass="wrong",
                        Auth_Protocol="imap", Auth_Login_Attempt="1", Client_IP="192.0.2.1")
    assert headers["Auth-Status"] != "OK" and headers["Auth-Wait"] == "3"
    assert "Auth-Server" not in headers


def test_placement_outlives_a_host_coming_back(cluster):
    """alice logs in while .3 is down (-> .4); .3 back: she stays on .4."""
    server, _, port, conf = cluster
    quiet = (io.StringIO(), io.StringIO())
    assert admin(["--config", str(conf), "cluster", "down", "127.0.0.3"], *quiet) == 0
    login = dict(Auth_Method="plain", Auth_User=server.user,
                 Auth_Pass=urllib.request.quote(PASSWORD))
    assert auth_http(port, **login)["Auth-Server"] == "127.0.0.4"
    assert admin(["--config", str(conf), "cluster", "up", "127.0.0.3"], *quiet) == 0
    assert auth_http(port, **login)["Auth-Server"] == "127.0.0.4"
    # The daemon wrote its placement records; the admin command sees them.
    import time

    deadline = time.monotonic() + 5
    while not owner_line(conf, server.user).startswith("127.0.0.4 placed ") \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert owner_line(conf, server.user).startswith("127.0.0.4 placed ")


def test_sessions_keep_a_user_placed(start_imapd, tmp_path):
    """
    A backend (cluster.node = its address) keeps a user with an open
    session placed on itself past user_expire, though the ring moved on;
    after logout the placement expires.
    """
    import imaplib
    import time

    conf, hosts_file = host_table(tmp_path, extra="user_expire = 3\n")
    quiet = (io.StringIO(), io.StringIO())
    me = expected_owner("alice")
    server = start_imapd({"cluster": {"hosts_file": str(hosts_file), "node": me,
                                      "user_expire": 3}})
    client = imaplib.IMAP4(server.host, server.port, timeout=30)
    client.login(server.user, server.password)
    deadline = time.monotonic() + 20
    while " placed " not in owner_line(conf, "alice") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert owner_line(conf, "alice").startswith(f"{me} placed ")
    # Weight 0: the ring gives alice to another host; her session keeps her.
    assert admin(["--config", str(conf), "cluster", "weight", me, "0"], *quiet) == 0
    time.sleep(4)
    assert owner_line(conf, "alice").startswith(f"{me} placed ")
    client.logout()
    time.sleep(4)
    line = owner_line(conf, "alice")
    assert " hashed " in line and not line.startswith(me)


def test_health_checks_mark_hosts(start_imapd, tmp_path):
    """
    The daemon probes the table's hosts: itself stays up, a refused port
    and a listener that never greets go down (the hung one by timeout);
    a greeting server on the refused port brings that host back up.
    """
    import threading
    import time

    from imapd.cluster.table import HostsFile

    store = tmp_path / "store"
    hosts = HostsFile(str(store / "hosts.json"))
    refused, hung_port = free_ports(2)
    hung = socket.socket()
    hung.bind(("127.0.0.3", hung_port))
    hung.listen(5)  # accepts in the kernel, never greets
    server = start_imapd({"cluster": {
        "hosts_file": str(store / "hosts.json"), "health_interval": 0.3,
        "health_timeout": 1.0, "health_fall": 2, "health_rise": 2}})
    hosts.update(lambda t: t.add("127.0.0.1", port=server.port))
    hosts.update(lambda t: t.add("127.0.0.2", port=refused))
    hosts.update(lambda t: t.add("127.0.0.3", port=hung_port))

    def state():
        return {h.address: (h.up, h.down_by) for h in hosts.table().hosts}

    def wait_for(expected):
        deadline = time.monotonic() + 30
        while state() != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        return state()

    assert wait_for({"127.0.0.1": (True, ""), "127.0.0.2": (False, "health"),
                     "127.0.0.3": (False, "health")}) == \
        {"127.0.0.1": (True, ""), "127.0.0.2": (False, "health"),
         "127.0.0.3": (False, "health")}
    greeter = socket.socket()
    greeter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    greeter.bind(("127.0.0.2", refused))
    greeter.listen(5)
    stop = threading.Event()

    def greet():
        greeter.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = greeter.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"* OK fake backend\r\n")
    thread = threading.Thread(target=greet, daemon=True)
    thread.start()
    try:
        assert wait_for({"127.0.0.1": (True, ""), "127.0.0.2": (True, ""),
                         "127.0.0.3": (False, "health")})["127.0.0.2"] == (True, "")
    finally:
        stop.set()
        thread.join(5)
        greeter.close()
        hung.close()


def test_down_ends_the_sessions_of_moved_users(start_imapd, tmp_path):
    """
    `cluster down` of a node ends the sessions its users have there (BYE
    within seconds), so their clients reconnect to the new owner.
    """
    import imaplib
    import time

    conf, hosts_file = host_table(tmp_path)
    me = expected_owner("alice")
    server = start_imapd({"cluster": {"hosts_file": str(hosts_file), "node": me}})
    client = imaplib.IMAP4(server.host, server.port, timeout=30)
    client.login(server.user, server.password)
    client.select("INBOX")
    # Wait until the node has placed alice on itself.
    deadline = time.monotonic() + 20
    while " placed " not in owner_line(conf, "alice") and time.monotonic() < deadline:
        time.sleep(0.2)
    err = io.StringIO()
    assert admin(["--config", str(conf), "cluster", "down", me], io.StringIO(), err) == 0
    assert "end within seconds" in err.getvalue()
    client.sock.settimeout(15)
    line = client.readline()
    assert line.startswith(b"* BYE [UNAVAILABLE]"), line
    assert client.readline() == b""  # closed
    # The worker's log line reaches the log through the master, maybe
    # after the client saw the BYE.
    deadline = time.monotonic() + 10
    while "kicked user=alice" not in server.daemon.log():
        assert time.monotonic() < deadline, "no 'kicked' log line"
        time.sleep(0.1)


def test_move_blocks_new_logins_until_the_old_sessions_end(start_imapd, tmp_path):
    """
    `cluster move` as a Dovecot director moves a user: a LOGIN of the user
    sent during the move is answered only after the node ended the user's
    old session (BYE) and user_kick_delay more; the command returns when
    the move is over.
    """
    import imaplib
    import threading
    import time

    from imapd.cluster.moves import MoveBlocks

    kick_delay = 1.0
    conf, hosts_file = host_table(tmp_path, extra=f"user_kick_delay = {kick_delay}\n")
    me = expected_owner("alice")
    other = next(h for h in HOSTS if h != me)
    server = start_imapd({"cluster": {"hosts_file": str(hosts_file), "node": me}})
    old = imaplib.IMAP4(server.host, server.port, timeout=30)
    old.login(server.user, server.password)
    old.select("INBOX")
    reports = tmp_path / "store" / "hosts.json.sessions"
    deadline = time.monotonic() + 20
    # The node reports alice's session (and has placed her on itself).
    while not any("alice" in p.read_text() for p in reports.glob(f"{me}*")):
        assert time.monotonic() < deadline, "no session report"
        time.sleep(0.1)
    moved = []
    mover = threading.Thread(target=lambda: moved.append(admin(
        ["--config", str(conf), "cluster", "move", "alice", other], io.StringIO(),
        io.StringIO())))
    mover.start()
    blocks = MoveBlocks(str(hosts_file) + ".moves")
    while blocks.blocked_until("alice", time.time()) is None:
        assert time.monotonic() < deadline and not moved, "the move did not block alice"
        time.sleep(0.01)
    # A new login during the move: sent now, answered later.
    new = socket.create_connection((server.host, server.port), timeout=30)
    f = new.makefile("rb")
    assert f.readline().startswith(b"* OK")
    new.sendall(f'n1 LOGIN "{server.user}" "{server.password}"\r\n'.encode())
    old.sock.settimeout(15)
    assert old.readline().startswith(b"* BYE [UNAVAILABLE]")
    bye = time.monotonic()
    line = f.readline()
    while not line.startswith(b"n1 "):
        line = f.readline()
    answered = time.monotonic()
    assert line.startswith(b"n1 OK"), line
    mover.join(30)
    assert moved == [0]
    # Not before the old session ended plus the kick delay.
    assert answered - bye >= kick_delay, (answered - bye)
    assert "waited" in server.daemon.log() and "for its move" in server.daemon.log()
    new.close()
