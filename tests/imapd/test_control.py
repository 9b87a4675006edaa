"""
The control socket's pieces without a daemon (L{imapd.control}): what one
process answers, how the master merges its workers' answers, who may
connect.  The daemon end to end: tests/e2e/test_e2e_admin_control.py.
"""

import os
import struct

from twisted.internet.task import Clock

from imapd.control import Gather, _ControlProtocol, answer


class FakeAccount:
    def __init__(self, user):
        self.user = user


class FakeSession:
    def __init__(self, user, sid):
        self.account = FakeAccount(user) if user else None
        self.session_id = sid
        self.peer = "192.0.2.1:1"
        self.selected = None
        self.tls_active = False
        self._closing = False
        self._started = 0.0
        self.kicked = None

    def kick(self, reason):
        self.kicked = reason
        self._closing = True


def test_answer_who_and_kick():
    """who lists logged-in sessions only; kick ends the user's and returns their rows."""
    sessions = [FakeSession("alice", "a1"), FakeSession("bob", "b1"),
                FakeSession("alice", "a2"), FakeSession(None, "pre-login")]
    who = answer(sessions, {"op": "who"}, "single")
    assert [r["session"] for r in who["sessions"]] == ["a1", "b1", "a2"]
    assert who["sessions"][0]["pid"] == os.getpid() and who["sessions"][0]["process"] == "single"
    kicked = answer(sessions, {"op": "kick", "user": "alice"}, "single")
    assert [r["session"] for r in kicked["sessions"]] == ["a1", "a2"]
    assert sessions[0].kicked == "Disconnected by the administrator" and sessions[1].kicked is None
    assert [r["session"] for r in answer(sessions, {"op": "who"}, "x")["sessions"]] == ["b1"]
    assert answer(sessions, {"op": "kick"}, "x")["ok"] is False
    assert answer(sessions, {"op": "reboot"}, "x") == {"ok": False,
                                                       "error": "unknown request 'reboot'"}


def test_gather_merges_and_names_the_silent():
    """The master's answer: all workers' rows, or after the timeout those that answered."""
    clock = Clock()
    gather = Gather(clock, {1: "imapd: worker pool-1", 2: "imapd: worker pool-2"})
    results = []
    gather.deferred.addCallback(results.append)
    gather.got(1, {"ok": True, "sessions": [{"user": "alice"}]})
    gather.got(1, {"ok": True, "sessions": [{"user": "again"}]})  # once per worker
    assert results == []
    clock.advance(5)
    assert results == [{"ok": True, "sessions": [{"user": "alice"}],
                        "unanswered": ["imapd: worker pool-2"]}]
    empty = Gather(Clock(), {})
    assert empty.deferred.result == {"ok": True, "sessions": [], "unanswered": []}


class PeerTransport:
    def __init__(self, uid):
        self.uid = uid
        self.written = b""
        self.lost = False

    def getHandle(self):
        uid = self.uid

        class Sock:
            def getsockopt(self, *args):
                return struct.pack("3i", 1, uid, uid)
        return Sock()

    def write(self, data):
        self.written += data

    def loseConnection(self):
        self.lost = True


def test_only_root_or_the_owner_may_ask():
    """A peer of another uid is refused before it can send anything."""
    proto = _ControlProtocol()
    proto.transport = PeerTransport(12345 if os.geteuid() != 12345 else 12346)
    proto.connectionMade()
    assert proto.transport.written == b'{"ok": false, "error": "not allowed"}\n'
    assert proto.transport.lost
    proto.lineReceived(b'{"op": "who"}')
    assert proto.transport.written.count(b"\n") == 1
