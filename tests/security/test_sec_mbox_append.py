# -*- test-case-name: tests.security.test_sec_mbox_append -*-
"""
Issue 18: an APPEND of a large message to an mbox folder costs memory far
below its size.  The store once read what it had just appended back whole
to parse it (storage.mbox.mailbox), and the next APPEND read the large
message whole again (the incremental parse starts at the old last
message); it now parses a window at a time (storage.mbox.source).
Against the real daemon, with its resident memory as the kernel counts it.
"""

from __future__ import annotations

import re

import pytest

from sec_content_helpers import Client, fetch_body, peak_rss, reset_peak, start_store_server

MB = 1024 * 1024


def _body() -> bytes:
    """
    120 MB of body: 78-octet lines (chunks end inside CRLFs), with "From "
    lines an mbox quotes and ">From " lines it quotes once more.
    """
    lines = b"".join(b"%076d\r\n" % i for i in range(1000))
    return (b"From the start of a line\r\n>From quoted\r\n" + lines) * (120 * MB // len(lines))


def _start(tmp_path, tls_files, store: str):
    """The daemon (APPENDLIMIT 200 MB) and a logged-in client with a folder "Big"."""
    server = start_store_server(tmp_path, tls_files, store, 200 * MB)
    c = Client(server, timeout=300)
    assert b"l1 OK" in c.login()
    assert b"c1 OK" in c.command("c1", b"CREATE Big")
    return server, c


def _append(c: Client, tag: str, mailbox: bytes, msg: bytes) -> int:
    """APPEND with a LITERAL+ literal; the new UID."""
    c.send(b"%s APPEND %s {%d+}\r\n" % (tag.encode(), mailbox, len(msg)) + msg + b"\r\n")
    out = c.expect(rb"(?m)^" + tag.encode() + rb" [^\n]*\n")
    m = re.search(rb"OK \[APPENDUID \d+ (\d+)\]", out)
    assert m, out
    return int(m[1])


def test_large_mbox_append_is_parsed_in_bounded_memory(tmp_path, tls_files):
    """
    A 120 MB message APPENDed to an empty mbox folder grows the daemon's
    peak memory by no more than the protocol's own copies of the literal
    (before: by five times its size), a small one after it by far less
    than the large message's size (before: by about its size); both read
    back byte for byte, quoted C{From } lines and CRLFs included.
    """
    server, c = _start(tmp_path, tls_files, "mbox")
    try:
        big = b"Subject: big\r\nFrom: a@example.org\r\n\r\n" + _body()
        small = b"Subject: small\r\n\r\nafter the big one\r\n"
        grown = []
        uids = []
        for i, msg in enumerate((big, small)):
            base = reset_peak(server)
            uids.append(_append(c, f"a{i}", b"Big", msg))
            grown.append(peak_rss(server) - base)
        print(f"peak RSS grew by {grown[0] / MB:.1f} MB for a {len(big) / MB:.1f} MB APPEND, "
              f"by {grown[1] / MB:.1f} MB for the small one after it")
        # The protocol holds the literal itself (its receive buffer and the
        # command's bytes: two copies, on a Maildir as well); the mbox store
        # adds no copy of its own to them (before: three more to prepare
        # the message, and one to parse it after writing).
        assert grown[0] < 2 * len(big) + 24 * MB, grown
        # Appending after the large message does not read it again.
        assert grown[1] < 24 * MB, grown
        assert b"s1 OK" in c.command("s1", b"SELECT Big")
        assert fetch_body(c, "f1", uids[1]) == small
        got = fetch_body(c, "f2", uids[0])
        assert len(got) == len(big)
        assert got == big
        c.close()
    finally:
        server.daemon.stop()


@pytest.mark.parametrize("store", ["maildir", "mbox"])
def test_large_url_part_is_copied_in_chunks(tmp_path, tls_files, store):
    """
    Issue 18: a CATENATE URL part naming a 120 MB message (whole, and a
    range of it) is copied from the store a chunk at a time
    (IMailbox.read_chunks): the APPEND grows the daemon's peak memory by
    far less than the source's size (before: by more than its size, the
    source read whole), into an mbox folder too, and the new message reads
    back byte for byte.
    """
    server, c = _start(tmp_path, tls_files, store)
    try:
        source = b"Subject: big\r\n\r\n" + _body()
        uid = _append(c, "s1", b"INBOX", source)
        m = re.search(rb"UIDVALIDITY (\d+)", c.command("st", b"STATUS INBOX (UIDVALIDITY)"))
        url = b"/INBOX;UIDVALIDITY=%s/;UID=%d" % (m[1], uid)
        text = b"X-Part: 1\r\n"
        base = reset_peak(server)
        c.send(b'a1 APPEND Big CATENATE (TEXT {%d+}\r\n%s URL "%s" URL "%s/;PARTIAL=7.1000")\r\n'
               % (len(text), text, url, url))
        out = c.expect(rb"(?m)^a1 [^\n]*\n")
        grown = peak_rss(server) - base
        new_uid = int(re.search(rb"a1 OK \[APPENDUID \d+ (\d+)\]", out)[1])
        print(f"{store}: peak RSS grew by {grown / MB:.1f} MB for a CATENATE of a "
              f"{len(source) / MB:.1f} MB URL part")
        assert grown < 24 * MB, grown
        assert b"s2 OK" in c.command("s2", b"SELECT Big")
        assert fetch_body(c, "f1", new_uid) == text + source + source[7:1007]
        c.close()
    finally:
        server.daemon.stop()
