"""
Issue 14: the messages between processes (imapd.process.wire), the
session state a login process hands to a worker, and the routing of a
user to a pool worker.
"""

from __future__ import annotations

import os
import socket

import pytest

from imapd.auth.userdb import UserRecord
from imapd.process.wire import (
    Decoder,
    ProtocolError,
    SessionState,
    frame,
    pool_index,
    record_from_json,
    record_to_json,
)


def _state(**kw) -> SessionState:
    fields = dict(tag="a1", record=UserRecord("alice", 1001, 100, "/home/alice", {"k": "v"}),
                  peer=("192.0.2.5", 40000), local=("127.0.0.1", 143), tls=True,
                  enabled=("CONDSTORE",), client_id=(("name", "mutt"), ("os", None)),
                  pending=b"a2 SELECT INBOX\r\n\x00\xff", session_id="s-1", slot=7,
                  bytes_in=40, bytes_out=300)
    fields.update(kw)
    return SessionState(**fields)


def test_session_state_round_trip():
    state = _state()
    again = SessionState.from_json(state.to_json())
    assert again == state
    assert again.record.extra == {"k": "v"}  # extra does not take part in ==
    assert again.pending == b"a2 SELECT INBOX\r\n\x00\xff"


def test_virtual_user_round_trip():
    state = _state(record=UserRecord("bob@example.org"), slot=None, tls=False)
    again = SessionState.from_json(state.to_json())
    assert again.record.uid is None and again.record.home is None
    assert again.slot is None and again.tls is False


@pytest.mark.parametrize("broken", [
    {"tag": ""},
    {"record": {"name": ""}},
    {"record": {"name": "alice", "uid": "0"}},
    {"record": {"name": "alice", "uid": True}},
    {"pending": "not base64!"},
    {"peer": []},
])
def test_bad_session_state_is_refused(broken):
    data = _state().to_json()
    data.update(broken)
    with pytest.raises(ProtocolError):
        SessionState.from_json(data)


def test_record_json():
    record = UserRecord("alice", 1001, 100, "/home/alice", {"userdb_mail": "mbox:~/mail"})
    again = record_from_json(record_to_json(record))
    assert (again, again.extra) == (record, record.extra)


def test_decoder_cuts_messages_anywhere():
    data = frame({"op": "a", "n": 1}) + frame({"op": "b", "text": "é" * 100}) + frame({"op": "c"})
    for cut in range(1, 8):
        decoder = Decoder()
        got = []
        for i in range(0, len(data), cut):
            decoder.feed(data[i:i + cut])
            got += [m["op"] for m, _fds in decoder.messages()]
        assert got == ["a", "b", "c"]


def test_decoder_gives_each_message_its_descriptors():
    decoder = Decoder()
    decoder.feed(frame({"op": "none"}) + frame({"op": "two"}, nfds=2)[:3])
    decoder.add_fd(10)
    decoder.add_fd(11)
    assert [(m["op"], f) for m, f in decoder.messages()] == [("none", [])]
    decoder.feed(frame({"op": "two"}, nfds=2)[3:] + frame({"op": "one"}, nfds=1))
    decoder.add_fd(12)
    assert [(m["op"], f) for m, f in decoder.messages()] == [("two", [10, 11]), ("one", [12])]


def test_decoder_refuses_too_many_descriptors_and_garbage():
    decoder = Decoder()
    decoder.feed(frame({"op": "x"}, nfds=1))
    with pytest.raises(ProtocolError):
        list(decoder.messages())
    decoder = Decoder()
    decoder.feed(b"\x00\x00\x00\x02[]")
    with pytest.raises(ProtocolError):
        list(decoder.messages())
    decoder = Decoder()
    decoder.feed(b"\xff\xff\xff\xff")
    with pytest.raises(ProtocolError):
        list(decoder.messages())


def test_descriptors_travel_over_a_socket_in_order():
    """What the spawner's side does (socket.send_fds / recv_fds)."""
    a, b = socket.socketpair()
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    try:
        socket.send_fds(a, [frame({"op": "p1"}, 1)], [w1])
        socket.send_fds(a, [frame({"op": "p2"}, 1)], [w2])
        decoder = Decoder()
        got = []
        while len(got) < 2:
            data, fds, _flags, _addr = socket.recv_fds(b, 65536, 8)
            for fd in fds:
                decoder.add_fd(fd)
            decoder.feed(data)
            got += list(decoder.messages())
        (m1, (f1,)), (m2, (f2,)) = got
        os.write(f1, b"one")
        os.write(f2, b"two")
        assert (m1["op"], os.read(r1, 3)) == ("p1", b"one")
        assert (m2["op"], os.read(r2, 3)) == ("p2", b"two")
        os.close(f1)
        os.close(f2)
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)
        a.close()
        b.close()


def test_pool_index_is_stable_and_spreads():
    # crc32: the same on every process and every run (not hash(), which
    # is salted per process).
    assert pool_index("alice", 4) == pool_index("alice", 4)
    assert pool_index("alice", 1) == 0
    spread = {pool_index(f"user{i}", 4) for i in range(100)}
    assert spread == {0, 1, 2, 3}
    import zlib

    assert pool_index("alice", 7) == zlib.crc32(b"alice") % 7


def test_the_spawners_image_holds_what_children_load_after_the_fork():
    """
    What a worker would otherwise load itself after the fork is loaded in
    the image it is forked from (L{imapd.process.spawner.preload}):
    Twisted's inotify (IDLE; imported, it runs ldconfig to find the C
    library), the delivery side of a worker, and the C library's
    name-service modules that initgroups uses for a system user.
    """
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import os, sys\n"
        "from imapd.process import spawner\n"
        "spawner.preload()\n"
        "print(sorted(m for m in ('twisted.internet.inotify', 'imapd.process.delivery')"
        " if m in sys.modules))\n"
        "import json\n"
        "print(json.dumps(sorted({l.split()[-1].rsplit('/', 1)[-1].split('.so')[0]"
        " for l in open('/proc/self/maps') if 'libnss_' in l})))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=str(Path(__file__).resolve().parents[2])
                         ).stdout.splitlines()
    assert out[0] == "['imapd.process.delivery', 'twisted.internet.inotify']"
    # Every separate NSS module nsswitch.conf names for groups is mapped
    # (files and dns are built into the C library).
    wanted = set()
    with open("/etc/nsswitch.conf") as f:
        for line in f:
            if line.split(":")[0].strip() in ("group", "initgroups"):
                wanted |= {f"libnss_{w}" for w in line.partition(":")[2].split()
                           if w.isalpha() and w not in ("files", "dns")}
    installed = {w for w in wanted if any(
        os.path.exists(os.path.join(d, f"{w}.so.2"))
        for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"))}
    assert installed <= set(json.loads(out[1])), out[1]
