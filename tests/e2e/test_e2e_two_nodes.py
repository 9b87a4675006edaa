"""
Two server processes ("nodes"), each with its own index directory and port,
on one Maildir tree (DESIGN.md rules 1-3; issue "Foundation"): clients on
both append, flag and expunge at the same time.  No UID is ever given twice
or reused, nothing appended is lost, and both nodes end with the same view.
"""

from __future__ import annotations

import random
import threading

from imapclient import IMAPClient

from conftest import start_server

ROUNDS = 25
CLIENTS_PER_NODE = 2


def client(server):
    c = IMAPClient(server.host, port=server.port, ssl=False, timeout=60)
    c.starttls(server.ssl_context())
    c.login(server.user, server.password)
    return c


def worker(server, name, assigned, expunged, kept, errors):
    rnd = random.Random(name)
    try:
        c = client(server)
        c.select_folder("INBOX")
        mine = []
        for i in range(ROUNDS):
            subject = f"{name}-{i}"
            msg = f"From: {name}@example.org\r\nSubject: {subject}\r\n\r\nbody {i}\r\n".encode()
            resp = c.append("INBOX", msg)
            uid = int(resp.split(b"]")[0].split()[-1])
            assigned.append(uid)
            mine.append((uid, subject))
            if i % 3 == 1:
                uid_f, _ = rnd.choice(mine)
                c.add_flags([uid_f], [b"\\Flagged"])
            if i % 5 == 4:
                uid_x, subj_x = mine.pop(rnd.randrange(len(mine)))
                c.add_flags([uid_x], [b"\\Deleted"])
                c.uid_expunge([uid_x])
                expunged.append((uid_x, subj_x))
            c.noop()
        kept.extend(mine)
        c.logout()
    except Exception as e:  # pragma: no cover - reported by the assert below
        errors.append(f"{name}: {e!r}")


def view(server):
    c = client(server)
    c.select_folder("INBOX")
    data = c.fetch(c.search("ALL"), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    c.logout()
    return sorted(
        (uid, tuple(sorted(v[b"FLAGS"])),
         v[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().strip())
        for uid, v in data.items()
    )


def test_two_nodes_share_one_maildir(tmp_path, tls_files):
    """Concurrent APPEND/STORE/EXPUNGE through two daemons on one Maildir tree."""
    shared = tmp_path / "shared-mail"
    shared.mkdir()
    settings = {"mail": {"location": f"maildir:{shared}/%u"}}
    nodes = []
    for n in range(2):
        root = tmp_path / f"node{n}"
        root.mkdir()
        nodes.append(start_server(root, tls_files, settings, name=f"node{n}"))
    try:
        # Both nodes write the same user's passwd entry; the user is the same.
        assigned, expunged, kept, errors = [], [], [], []
        threads = [
            threading.Thread(target=worker, args=(node, f"n{n}c{k}", assigned, expunged, kept, errors))
            for n, node in enumerate(nodes)
            for k in range(CLIENTS_PER_NODE)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors, errors
        total = len(nodes) * CLIENTS_PER_NODE * ROUNDS
        assert len(assigned) == total
        assert len(set(assigned)) == total, "a UID was given twice"
        a, b = view(nodes[0]), view(nodes[1])
        assert a == b, "the two nodes disagree"
        subjects = sorted(s for _u, _f, s in a)
        assert subjects == sorted(f"Subject: {s}" for _u, s in kept)
        assert {u for u, _f, _s in a} == {u for u, _s in kept}
        assert not ({u for u, _f, _s in a} & {u for u, _s in expunged})
    finally:
        for node in nodes:
            node.daemon.stop()
