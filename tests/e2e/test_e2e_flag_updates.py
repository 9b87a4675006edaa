"""
Issue 13 rule 1 across processes: two server processes ("nodes"), each
with its own index directory, share one mail directory (Maildir or mbox),
and sessions on both change flags of the same messages.  C{+FLAGS} and
C{-FLAGS} change only the named flags of what the store holds, under the
store's lock (RFC 3501 section 6.4.6; DESIGN.md "Flag changes"), so no
acknowledged change is ever lost, whichever node made it.
"""

from __future__ import annotations

import random
import threading

import pytest

from conftest import start_server
from test_e2e_two_nodes import client

MESSAGES = 6
ROUNDS = 30


def flags_of(server) -> dict[int, set[bytes]]:
    c = client(server)
    c.select_folder("INBOX")
    data = c.fetch(c.search("ALL"), ["FLAGS"])
    c.logout()
    return {uid: {f.lower() for f in v[b"FLAGS"]} - {b"\\recent"} for uid, v in data.items()}


@pytest.fixture(params=["maildir", "mbox"])
def nodes(request, tmp_path, tls_files):
    shared = tmp_path / "shared-mail"
    shared.mkdir()
    if request.param == "maildir":
        location = f"maildir:{shared}/%u"
    else:
        location = f"mbox:{shared}/%u:INBOX={shared}/%u.inbox"
    started = []
    try:
        for n in range(2):
            root = tmp_path / f"node{n}"
            root.mkdir()
            started.append(start_server(root, tls_files, {"mail": {"location": location}},
                                        name=f"node{n}"))
        yield started
    finally:
        for node in started:
            node.daemon.stop()


def test_interleaved_plus_and_minus_flags_on_two_nodes(nodes):
    """
    The issue's case, across processes: node 0 adds \\Answered, then node 1
    (whose view still says only \\Seen) removes \\Seen.  Both changes stay,
    as both nodes report.
    """
    a, b = client(nodes[0]), client(nodes[1])
    a.append("INBOX", b"Subject: one\r\n\r\nbody\r\n", flags=[b"\\Seen"])
    a.select_folder("INBOX")
    b.select_folder("INBOX")
    [uid] = a.search("ALL")
    a.add_flags([uid], [b"\\Answered", b"$Todo"])
    b.remove_flags([uid], [b"\\Seen"])
    b.add_flags([uid], [b"$Later"])
    a.remove_flags([uid], [b"$Todo"])
    a.logout()
    b.logout()
    expected = {b"\\answered", b"$later"}
    assert flags_of(nodes[0])[uid] == expected
    assert flags_of(nodes[1])[uid] == expected


def worker(server, name, uids, outcome, errors):
    """
    Toggle this worker's own keyword on random messages through one node;
    every STORE's OK is an acknowledged change.  Record, per message, the
    state of the keyword after the worker's last acknowledged STORE.
    """
    rnd = random.Random(name)
    keyword = f"$k{name}".encode()
    try:
        c = client(server)
        c.select_folder("INBOX")
        mine = {}
        for _ in range(ROUNDS):
            uid = rnd.choice(uids)
            if rnd.random() < 0.6:
                c.add_flags([uid], [keyword])
                mine[uid] = True
            else:
                c.remove_flags([uid], [keyword], silent=True)
                mine[uid] = False
        c.logout()
        outcome[keyword.lower()] = mine
    except Exception as e:  # pragma: no cover - reported by the assert below
        errors.append(f"{name}: {e!r}")


def test_concurrent_flag_changes_on_two_nodes_lose_nothing(nodes):
    """
    Two sessions per node change their own keyword on the same few
    messages at the same time: each message ends with exactly the keywords
    whose last acknowledged STORE added them, on both nodes.
    """
    c = client(nodes[0])
    for i in range(MESSAGES):
        c.append("INBOX", f"Subject: m{i}\r\n\r\nbody\r\n".encode(), flags=[b"\\Seen"])
    c.select_folder("INBOX")
    uids = c.search("ALL")
    c.logout()
    outcome, errors = {}, []
    threads = [threading.Thread(target=worker, args=(node, f"{n}{k}", uids, outcome, errors))
               for n, node in enumerate(nodes) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(outcome) == 4
    for node in nodes:
        flags = flags_of(node)
        for keyword, last in outcome.items():
            for uid, present in last.items():
                assert (keyword in flags[uid]) == present, (keyword, uid, flags[uid])
        assert all(b"\\seen" in f for f in flags.values())


def test_new_mail_is_recent_on_exactly_one_node(nodes):
    """
    Issue 13 rule 3 across processes: sessions on both nodes have INBOX
    selected; mail APPENDed (with flags and without) through node 0 is
    \\Recent to exactly one of them, and a later SELECT gets none.
    """
    a, b = client(nodes[0]), client(nodes[1])
    a.select_folder("INBOX")
    b.select_folder("INBOX")
    writer = client(nodes[0])
    writer.append("INBOX", b"Subject: one\r\n\r\nbody\r\n", flags=[b"\\Seen"])
    writer.append("INBOX", b"Subject: two\r\n\r\nbody\r\n")
    writer.logout()
    recent = []
    for c in (a, b):
        c.noop()
        data = c.fetch(c.search("ALL"), ["FLAGS"])
        recent.append({uid for uid, v in data.items() if b"\\Recent" in v[b"FLAGS"]})
        c.logout()
    assert len(recent[0] | recent[1]) == 2 and not recent[0] & recent[1], recent
    late = client(nodes[1])
    assert late.select_folder("INBOX")[b"RECENT"] == 0
    late.logout()
