"""
Issue 14: the master's decisions without processes: where a logged-in
session goes (pool worker by name, a system user's own worker, or a
refusal), that only sessions the master authenticated can be handed off,
and the connection counts it keeps for every login process.
"""

from __future__ import annotations

import os

import pytest
from twisted.internet import task

from conf import load_config
from imapd.auth.userdb import UserRecord
from imapd.defaults import Effective
from imapd.process import master as master_module
from imapd.process.master import Child, MasterService
from imapd.process.wire import pool_index, record_to_json


class FakeChild(Child):
    """A child whose messages are kept instead of sent."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(kind, name, 1, {})
        self.ready = True
        self.sent: list = []

    def send(self, message, fds=()):
        self.sent.append((message, list(fds)))


@pytest.fixture
def master(monkeypatch):
    config = load_config(None, {"limits.max_connections": 3,
                                "limits.max_failed_logins_per_address": 2})
    effective = Effective("localhost", None, None, "/nonexistent/passwd", "maildir:/m/%u",
                          "/nonexistent/index", True)
    m = MasterService(config, effective, reactor=task.Clock())
    m.pool = [FakeChild("pool", f"worker pool-{i + 1}") for i in range(3)]
    m.auth = FakeChild("auth", "auth")
    spawned = []

    def spawn(child):
        spawned.append(child)
        child.sent = []
        child.send = lambda message, fds=(): child.sent.append((message, list(fds)))
        return child
    monkeypatch.setattr(m, "spawn", spawn)
    m.spawned = spawned
    return m


def test_virtual_users_go_to_their_pool_worker(master):
    for name in ("alice", "bob", "carol@example.org"):
        worker, why = master._worker_for(UserRecord(name), {})
        assert worker is master.pool[pool_index(name, 3)] and why is None
    # A uid that is the server's own is a virtual user too.
    worker, _ = master._worker_for(UserRecord("dave", uid=os.getuid()), {})
    assert worker is master.pool[pool_index("dave", 3)]
    assert master.spawned == []


def test_system_user_gets_its_own_worker_when_root(master, monkeypatch):
    monkeypatch.setattr(master_module.os, "getuid", lambda: 0)
    record = UserRecord("alice", uid=1001, gid=1001, home="/home/alice")
    worker, why = master._worker_for(record, {"peer": ["192.0.2.5", 4000]})
    assert why is None and worker.kind == "user"
    assert worker.title == "imapd: worker alice 192.0.2.5"
    assert worker.args["user"] == record_to_json(record)
    # Her second session joins the same worker.
    again, _ = master._worker_for(record, {"peer": ["198.51.100.1", 4000]})
    assert again is worker and master.spawned == [worker]
    # Once it asked to go (idle), it gets no more sessions: a new one is made.
    master._on_idle(worker, {"op": "idle"}, [])
    assert worker.retiring and worker.sent == [({"op": "retire"}, [])]
    third, _ = master._worker_for(record, {"peer": ["192.0.2.5", 1]})
    assert third is not worker and master.spawned == [worker, third]


def test_system_user_refused_when_not_root(master, monkeypatch):
    monkeypatch.setattr(master_module.os, "getuid", lambda: 1000)
    logged = []
    monkeypatch.setattr(master_module.log, "error", lambda fmt, **kw: logged.append(kw))
    worker, why = master._worker_for(UserRecord("alice", uid=1001), {})
    assert worker is None and why
    assert logged == [{"user": "alice", "uid": 1001}]
    assert master.spawned == []


def _authenticate(master, login, name="alice"):
    master._on_auth(login, {"op": "auth", "req": 7, "user": "", "password": "", "host": "192.0.2.9"}, [])
    (message, _fds), = master.auth.sent[-1:]
    master._on_auth_result(master.auth, {"op": "auth-result", "req": message["req"],
                                         "record": record_to_json(UserRecord(name))}, [])
    reply = login.sent[-1][0]
    assert reply["result"] == "ok" and reply["req"] == 7
    return reply["token"]


def test_only_a_session_the_master_authenticated_is_handed_off(master):
    login = FakeChild("login", "login")
    other_login = FakeChild("login", "login")
    state = {"tag": "a", "record": record_to_json(UserRecord("root", uid=0)), "slot": None}
    r, w = os.pipe()
    os.close(w)
    # A made-up token: refused, descriptor closed.
    master._on_handoff(login, {"op": "handoff", "req": 1, "token": "nope", "state": state,
                               "family": 1}, [r])
    assert login.sent[-1][0] == {"op": "reply", "req": 1, "ok": False, "reason": "Login failed"}
    with pytest.raises(OSError):
        os.fstat(r)
    # A token granted to another login process: refused too.
    token = _authenticate(master, other_login)
    r, w = os.pipe()
    os.close(w)
    master._on_handoff(login, {"op": "handoff", "req": 2, "token": token, "state": state,
                               "family": 1}, [r])
    assert login.sent[-1][0]["ok"] is False
    # The right one: the master's record (not the login process's) goes to alice's worker.
    token = _authenticate(master, login)
    r, w = os.pipe()
    os.close(w)
    master._on_handoff(login, {"op": "handoff", "req": 3, "token": token, "state": state,
                               "family": 1}, [r])
    worker = master.pool[pool_index("alice", 3)]
    (message, fds), = worker.sent
    assert message["op"] == "session" and message["state"]["record"]["name"] == "alice"
    assert fds == [r]
    master._on_adopted(worker, {"op": "adopted", "req": message["req"], "ok": True}, [])
    assert login.sent[-1][0] == {"op": "reply", "req": 3, "ok": True, "reason": None}
    with pytest.raises(OSError):
        os.fstat(r)
    # A token is good once.
    master._on_handoff(login, {"op": "handoff", "req": 4, "token": token, "state": state,
                               "family": 1}, [os.dup(0)])
    assert login.sent[-1][0]["ok"] is False


def test_failed_logins_and_connections_count_over_all_login_processes(master):
    logins = [FakeChild("login", "login") for _ in range(2)]
    for n, login in enumerate(logins):
        master._on_auth(login, {"op": "auth", "req": n, "user": "", "password": "",
                                "host": "192.0.2.9"}, [])
        areq = master.auth.sent[-1][0]["req"]
        master._on_auth_result(master.auth, {"op": "auth-result", "req": areq, "record": None}, [])
        assert login.sent[-1][0]["result"] == "fail"
    # Two failures from two login processes: the address is over its limit.
    master._on_auth(logins[0], {"op": "auth", "req": 9, "user": "", "password": "",
                                "host": "192.0.2.9"}, [])
    assert logins[0].sent[-1][0]["result"] == "blocked"
    # max_connections = 3, whichever process asks.
    slots = []
    for n in range(4):
        login = logins[n % 2]
        master._on_admit(login, {"op": "admit", "req": n, "host": "192.0.2.1"}, [])
        slots.append(login.sent[-1][0])
    assert [("slot" in s, s.get("refused")) for s in slots] == [
        (True, None), (True, None), (True, None), (False, "Too many connections to this server")]
    # A slot is released by its holder, once; a worker that ends releases its own.
    master._on_release(logins[0], {"op": "release", "slot": slots[0]["slot"]}, [])
    master._on_release(logins[0], {"op": "release", "slot": slots[0]["slot"]}, [])
    assert master.connections.total == 2


def test_a_child_may_send_only_what_its_kind_sends(master, monkeypatch):
    warned = []
    monkeypatch.setattr(master_module.log, "warn", lambda fmt, **kw: warned.append(kw["op"]))
    worker = master.pool[0]
    r, w = os.pipe()
    os.close(w)
    # A worker posing as a login process: ignored, descriptor closed.
    master.on_child_message(worker, {"op": "handoff", "req": 1, "token": "x"}, [r])
    master.on_child_message(worker, {"op": "admit", "req": 2, "host": "192.0.2.1"}, [])
    master.on_child_message(worker, {"op": "auth-result", "req": 3, "record": None}, [])
    assert warned == ["handoff", "admit", "auth-result"]
    assert worker.sent == [] and master.connections.total == 0
    with pytest.raises(OSError):
        os.fstat(r)
    login = FakeChild("login", "login")
    master.on_child_message(login, {"op": "admit", "req": 4, "host": "192.0.2.1"}, [])
    assert "slot" in login.sent[-1][0]


def test_the_services_process_cannot_answer_password_checks(master):
    """It serves LMTP and the cluster: it cannot answer password checks or hand off sessions."""
    services = FakeChild("services", "services")
    services.ready = False
    master.auth_pending[7] = (FakeChild("login", "login"), 1, "192.0.2.1", master.auth)
    master.on_child_message(services, {"op": "auth-result", "req": 7, "record": None}, [])
    assert 7 in master.auth_pending
    master.on_child_message(services, {"op": "ready"}, [])
    assert services.ready


def _deliver(record, **fields):
    return dict({"op": "deliver", "req": 5, "record": record_to_json(record),
                 "address": f"{record.name}@example.org", "folder": None, "sender": "s@x",
                 "data": "aGk="}, **fields)


def test_deliveries_go_to_the_users_worker_and_back(master, monkeypatch):
    """
    The services process's delivery goes to the worker of the user's
    logins, descriptor included; only that worker's answer goes back, and
    the master closes its copy of the descriptor then.
    """
    monkeypatch.setattr(master_module.os, "getuid", lambda: 0)
    services = FakeChild("services", "services")
    vworker = master.pool[pool_index("bob", 3)]
    master.on_child_message(services, _deliver(UserRecord("bob")), [])
    (message, fds), = vworker.sent
    assert message["op"] == "deliver" and message["address"] == "bob@example.org" and not fds
    # A system user: the worker of her own uid, started as a login starts it.
    alice = UserRecord("alice", uid=1001, gid=1001, home="/home/alice")
    r, w = os.pipe()
    master.on_child_message(services, _deliver(alice, req=6, size=2, data=None), [r])
    (worker,) = master.spawned
    assert worker.kind == "user" and worker.title == "imapd: worker alice lmtp"
    ((wmessage, wfds),) = worker.sent
    assert wfds == [r]
    # Another worker cannot answer for it; its own answer goes back.
    master.on_child_message(vworker, {"op": "delivered", "req": wmessage["req"], "ok": True,
                                      "mailbox": "INBOX", "uid": 9}, [])
    assert services.sent == []
    os.fstat(r)
    master.on_child_message(worker, {"op": "delivered", "req": wmessage["req"], "ok": True,
                                     "mailbox": "INBOX", "uid": 9}, [])
    assert services.sent[-1][0] == {"op": "reply", "req": 6, "ok": True, "mailbox": "INBOX",
                                    "uid": 9, "code": None, "status": None, "text": None}
    with pytest.raises(OSError):
        os.fstat(r)
    os.close(w)


def test_a_worker_that_ends_during_a_delivery_gives_451(master):
    services = FakeChild("services", "services")
    worker = master.pool[pool_index("bob", 3)]
    master.on_child_message(services, _deliver(UserRecord("bob")), [])
    worker.blobs = master.blobs
    master.child_exited(worker, "killed by SIGKILL")
    assert services.sent[-1][0] == {"op": "reply", "req": 5, "ok": False, "code": 451,
                                    "status": "4.3.0",
                                    "text": "Mail worker ended, try again later"}
    assert master.deliveries == {}


def test_only_the_services_process_asks_for_deliveries(master):
    """A login process or a worker cannot make a delivery; nobody delivers as root."""
    login = FakeChild("login", "login")
    master.on_child_message(login, _deliver(UserRecord("bob")), [])
    master.on_child_message(master.pool[0], _deliver(UserRecord("bob")), [])
    assert all(child.sent == [] for child in master.pool) and login.sent == []
    services = FakeChild("services", "services")
    master.on_child_message(services, _deliver(UserRecord("root", uid=0, gid=0)), [])
    assert services.sent[-1][0]["code"] == 451
    assert all(child.sent == [] for child in master.pool) and master.spawned == []


@pytest.mark.parametrize("overrides, kinds", [
    ({}, []),
    ({"lmtp_listen": ["unix:/run/lmtp"]}, [("lmtp_listen", "unix:/run/lmtp")]),
    ({"cluster.hosts_file": "/nonexistent/hosts",
      "cluster.socketmap_listen": ["tcp:27:interface=127.0.0.1"]},
     [("socketmap_listen", "tcp:27:interface=127.0.0.1")]),
])
def test_a_services_process_only_when_configured(overrides, kinds):
    import socket

    config = load_config(None, dict(overrides, **{"service.login_processes": 1,
                                                  "service.mail_workers": 1}))
    effective = Effective("localhost", None, None, "/nonexistent/passwd", "maildir:/m/%u",
                          "/nonexistent/index", True)
    m = MasterService(config, effective, reactor=task.Clock())
    socks = [socket.socket(socket.AF_UNIX if d.startswith("unix:") else socket.AF_INET)
             for _o, d in kinds]
    m.service_listeners = [(o, d, s) for (o, d), s in zip(kinds, socks)]
    spawned = []
    m.spawn = lambda child: spawned.append(child) or child
    m.start_generation()
    services = [c for c in spawned if c.kind == "services"]
    if not kinds:
        assert services == [] and m.services is None
        return
    (child,) = services
    assert m.services is child and child.title == "imapd: services"
    assert child.args["listeners"] == [{"option": o, "description": d, "family": int(s.family)}
                                       for (o, d), s in zip(kinds, socks)]
    for s in socks:
        s.close()


def test_unavailable_auth_is_an_error_not_a_failure(master):
    """
    The auth process could not ask the password database (LDAP down):
    the login process hears "error" (it answers NO [UNAVAILABLE]) and the
    address is not counted as failing, however often it happens; a real
    refusal still is.
    """
    login = FakeChild("login", "login")

    def attempt(req, **result):
        master._on_auth(login, {"op": "auth", "req": req, "user": "", "password": "",
                                "host": "192.0.2.9"}, [])
        (message, _fds), = master.auth.sent[-1:]
        master._on_auth_result(master.auth, {"op": "auth-result", "req": message["req"],
                                             "record": None, **result}, [])
        return login.sent[-1][0]["result"]

    # max_failed_logins_per_address is 2.
    assert [attempt(i, unavailable=True) for i in range(4)] == ["error"] * 4
    assert [attempt(10 + i) for i in range(3)] == ["fail", "fail", "blocked"]


def test_delivery_links_made_when_both_are_up_and_our_copies_closed(master):
    """
    With LMTP configured, the services process and each ready pool worker
    get the two ends of a socket pair of their own (the link, L{imapd.
    process.delivery}); the master closes its copy of each end once that
    child says it has it, or when the child ends before, so that a link
    whose peer dies sees EOF.
    """
    master.config = load_config(None, {"lmtp_listen": ["unix:/run/lmtp"]})
    services = FakeChild("services", "services")
    master.services = services
    for i, worker in enumerate(master.pool):
        worker.args = {"index": i}
    master._link_deliveries(services)
    assert len(services.sent) == 3 and len(master.link_ends) == 3
    for (message, fds), worker in zip(services.sent, master.pool):
        ((wmessage, wfds),) = worker.sent
        assert message["op"] == wmessage["op"] == "link"
        assert message["link"] == wmessage["link"]
        assert (message["index"], message["workers"], message["uid"]) == (
            worker.args["index"], 3, os.getuid())
        assert message["title"] == worker.title
        assert len(fds) == len(wfds) == 1 and fds != wfds
    first = services.sent[0][0]["link"]
    ends = dict(master.link_ends[first])
    master.on_child_message(services, {"op": "linked", "link": first}, [])
    assert ends[services.id].fileno() == -1 and ends[master.pool[0].id].fileno() >= 0
    master.on_child_message(master.pool[0], {"op": "linked", "link": first}, [])
    assert ends[master.pool[0].id].fileno() == -1 and first not in master.link_ends
    # A worker that ends before it took its end: our copy of it goes then.
    second = services.sent[1][0]["link"]
    worker_end = master.link_ends[second][master.pool[1].id]
    master.pool[1].blobs = master.blobs
    master.child_exited(master.pool[1], "killed by SIGKILL")
    assert worker_end.fileno() == -1
    # A pool worker started again is linked again, on its own.
    services.sent.clear()
    again = master.pool[1]
    again.ready, again.sent, again.args = True, [], {"index": 1}
    again.send = lambda message, fds=(): again.sent.append((message, list(fds)))
    master._link_deliveries(again)
    ((message, _fds),) = services.sent
    assert message["index"] == 1 and again.sent[0][0]["link"] == message["link"]
    for ends in master.link_ends.values():
        for end in ends.values():
            end.close()


def test_no_delivery_links_without_lmtp_or_for_a_retiring_services(master):
    services = FakeChild("services", "services")
    master.services = services
    master._link_deliveries(services)  # no lmtp_listen: no links
    assert services.sent == [] and master.link_ends == {}
    master.config = load_config(None, {"lmtp_listen": ["unix:/run/lmtp"]})
    master.pool[0].args = {"index": 0}
    services.retiring = True
    master._link_deliveries(master.pool[0])
    assert services.sent == []
