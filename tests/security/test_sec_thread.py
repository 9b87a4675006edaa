# -*- test-case-name: tests.security.test_sec_thread -*-
"""
Issue 18 item 5: THREAD cost must not grow with the square of a
References header, and the work must stop when the client leaves.

 - One message with 64,000 References ids: keys keep a bounded tail
   (L{imapd.sort.keys.MAX_REFERENCES}) and threading finishes in well
   under a second (41 s before), run in a subprocess with a deadline so
   that the old code fails in bounded time.
 - The loop check alone is linear: a chain of 10,000 messages threads
   in bounded time.
 - A THREAD whose client is gone stops at the next message
   (L{imapd.cancel}).
 - Against the real daemon: the 64,000-reference message is appended
   and THREAD REFERENCES answers in seconds while a second client's NOOP
   is answered at once.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sec_content_helpers import Client, start_server

REPO = Path(__file__).resolve().parents[2]


def _big_references(n: int) -> bytes:
    refs = b" ".join(b"<r%d@example.org>" % i for i in range(n))
    return (b"From: a@example.org\r\nSubject: long\r\nMessage-ID: <me@example.org>\r\n"
            b"References: " + refs + b"\r\n\r\nbody\r\n")


def _in_subprocess(code: str, timeout: float) -> str:
    """Run C{code} with the checkout first on the path; fail if it overruns."""
    try:
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"took more than {timeout}s")
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_one_message_with_64000_references():
    """Keys of a 64,000-id References keep a bounded tail; threading takes < 1 s of CPU."""
    out = _in_subprocess("""
        import sys, time
        sys.path.insert(0, ".")
        from imapd.message import Message
        from imapd.sort.keys import header_keys, SortItem, THREAD_GROUPS
        from imapd.sort.thread import thread_items, format_threads
        refs = b" ".join(b"<r%d@example.org>" % i for i in range(64000))
        msg = b"Subject: x\\r\\nMessage-ID: <me@x>\\r\\nReferences: " + refs + b"\\r\\n\\r\\n"
        keys = header_keys(Message(msg), THREAD_GROUPS)
        from datetime import datetime, timezone
        class R: internaldate = datetime(2024, 1, 1, tzinfo=timezone.utc)
        start = time.process_time()
        roots = thread_items("REFERENCES", [SortItem(1, 1, R(), keys)])
        line = format_threads(roots, False)
        print(len(keys.references), time.process_time() - start, line.decode().strip())
    """, timeout=20)
    count, spent, line = out.split(None, 2)
    assert int(count) <= 1000
    assert float(spent) < 1.0
    assert line.strip() == "* THREAD (1)"


def test_loop_check_is_linear():
    """
    A 10,000-message chain 60,000 containers deep, each message naming its
    predecessor and then 5 ids of its own: the loop check no longer walks
    up the whole chain for each link (before: about 6 x 60,000 x 10,000 / 2
    steps).
    """
    out = _in_subprocess("""
        import sys, time
        sys.path.insert(0, ".")
        from datetime import datetime, timezone
        from imapd.sort.keys import HeaderKeys, SortItem
        from imapd.sort.thread import thread_items
        class R: internaldate = datetime(2024, 1, 1, tzinfo=timezone.utc)
        items = []
        for i in range(10000):
            refs = (("m%d@x" % (i - 1),) if i else ()) + tuple("m%d-%d@x" % (i, j) for j in range(5))
            keys = HeaderKeys(message_id="m%d@x" % i, references=refs, sent=float(i),
                              groups=frozenset({"thread", "date"}))
            items.append(SortItem(i + 1, i + 1, R(), keys))
        start = time.process_time()
        roots = thread_items("REFS", items)
        print(len(roots), time.process_time() - start)
    """, timeout=60)
    roots, spent = out.split()
    assert int(roots) == 1
    assert float(spent) < 5


def test_thread_stops_when_client_is_gone():
    """A THREAD over many messages raises ConnectionClosing soon after the client left."""
    from imapd import cancel
    from imapd.errors import ConnectionClosing
    from imapd.sort.keys import HeaderKeys, SortItem
    from imapd.sort.thread import thread_items

    class R:
        internaldate = datetime(2024, 1, 1, tzinfo=timezone.utc)

    items = [SortItem(i + 1, i + 1, R(), HeaderKeys(message_id=f"m{i}@x",
                                                     references=(f"m{i - 1}@x",),
                                                     groups=frozenset({"thread"})))
             for i in range(5000)]
    asked = []

    def gone() -> bool:
        asked.append(1)
        return len(asked) > 100

    with pytest.raises(ConnectionClosing):
        cancel.bound(gone, thread_items)("REFERENCES", items)
    assert len(asked) == 101
    # Without a departed client the same work completes.
    assert len(cancel.bound(lambda: False, thread_items)("REFERENCES", items)) == 1


def test_daemon_threads_a_64000_reference_message(tmp_path, tls_files):
    """
    The real daemon: APPEND the message, THREAD REFERENCES answers within
    10 s (41 s before), and a second client's NOOP meanwhile is answered
    within 2 s.
    """
    server = start_server(tmp_path, tls_files)
    try:
        a, b = Client(server, timeout=20), Client(server, timeout=20)
        assert b"OK" in a.login() and b"OK" in b.login()
        msg = _big_references(64000)
        a.send(b"p1 APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
        assert b"p1 OK" in a.expect(rb"p1 [^\n]*\n")
        assert b"OK" in a.command("s1", b"SELECT INBOX")
        noop = []

        def second():
            time.sleep(0.2)
            noop.append(b.timed("n1", b"NOOP")[0])
        t = threading.Thread(target=second)
        t.start()
        spent, out = a.timed("t1", b"THREAD REFERENCES UTF-8 ALL")
        t.join(30)
        assert b"* THREAD (1)" in out and b"t1 OK" in out, out
        assert spent < 10, spent
        assert noop and noop[0] < 2, noop
        a.close()
        b.close()
    finally:
        server.daemon.stop()


def test_session_work_sees_its_client_leave():
    """
    The protocol runs every store call with its "closing" test bound
    (L{imapd.cancel}): work running when the connection is lost stops at
    its next check, work of a live session does not.
    """
    from twisted.cred.portal import Portal
    from twisted.internet import task
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    from imapd import cancel
    from imapd.errors import ConnectionClosing
    from imapd.server import IMAPFactory, ServerContext, SessionLimits

    context = ServerContext(portal=Portal(None, []), reactor=task.Clock(), storage_pool=None,
                            tls=object(), allow_plaintext_auth=True, limits=SessionLimits())
    proto = IMAPFactory(context).buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    proto.makeConnection(StringTransport())
    done = []
    proto.run(lambda: cancel.check() or "went on").addCallback(done.append)
    assert done == ["went on"]

    def work():
        for n in range(1000):
            if n == 10:
                proto.connectionLost(None)
            cancel.check()
            done.append(n)
    failures = []
    proto.run(work).addErrback(failures.append)
    assert done[-1] == 9 and failures and failures[0].check(ConnectionClosing)
