# -*- test-case-name: tests.security.test_sec_catenate -*-
"""
Issue 18 item 4: CATENATE amplification.  A few hundred octets of
MULTIAPPEND naming one large message many times must not make the daemon
assemble (in memory or on disk) more than APPENDLIMIT in all, and a quota
must refuse before anything is assembled.  Against the real daemon.
"""

from __future__ import annotations

import re

import pytest

from sec_content_helpers import (
    Client, fetch_body, peak_rss, reset_peak, rss, start_server, start_store_server,
)

MB = 1024 * 1024


def _source(c: Client, size: int) -> bytes:
    """Append one C{size}-octet message; return its URL."""
    body = (b"x" * 76 + b"\r\n") * (size // 78)
    msg = b"Subject: big\r\n\r\n" + body
    c.send(b"s1 APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    out = c.expect(rb"s1 [^\n]*\n")
    uidvalidity, uid = re.search(rb"APPENDUID (\d+) (\d+)", out).groups()
    return b"/INBOX;UIDVALIDITY=%s/;UID=%s" % (uidvalidity, uid)


def _messages(c: Client) -> int:
    return int(re.search(rb"MESSAGES (\d+)", c.command("st", b"STATUS INBOX (MESSAGES)"))[1])


def test_url_parts_count_against_appendlimit(tmp_path, tls_files):
    """
    APPENDLIMIT 4 MB; a 1 MB message named by 40 CATENATE messages of one
    MULTIAPPEND (2 kB on the wire, 40 MB to assemble) is refused with
    NO [LIMIT] before anything is fetched; nothing is appended, the
    daemon's peak memory grows by far less than 40 MB, and a 3 MB
    CATENATE of the same message (within the limit) still works.
    """
    server = start_server(tmp_path, tls_files, {"limits": {"max_literal": 4 * MB}})
    try:
        c = Client(server)
        assert b"l1 OK" in c.login()
        url = _source(c, MB)
        before = _messages(c)
        base = peak_rss(server)
        parts = b" ".join(b'CATENATE (URL "%s")' % url for _ in range(40))
        out = c.command("a1", b"APPEND INBOX " + parts)
        assert re.search(rb"a1 NO \[LIMIT\]", out), out
        grown = peak_rss(server) - base
        assert _messages(c) == before
        assert grown < 12 * MB, grown
        # One message of three copies (3 MB, under APPENDLIMIT) is fine.
        out = c.command("a2", b'APPEND INBOX CATENATE (URL "%s" URL "%s" URL "%s")'
                        % (url, url, url))
        assert b"a2 OK" in out, out
        # Five copies in one message: [TOOBIG], known from the records.
        out = c.command("a3", b"APPEND INBOX CATENATE (%s)" % b" ".join(
            b'URL "%s"' % url for _ in range(5)))
        assert re.search(rb"a3 NO \[TOOBIG\]", out), out
        assert rss(server) > 0
        c.close()
    finally:
        server.daemon.stop()


def test_quota_is_checked_before_assembly(tmp_path, tls_files):
    """
    With a 4 MB storage quota, a MULTIAPPEND naming a 2 MB message 15
    times, each with a TEXT octet of its own (within APPENDLIMIT in all), is refused with NO [OVERQUOTA]
    before the 30 MB are assembled: the daemon's peak memory grows by
    far less.
    """
    server = start_server(tmp_path, tls_files, {"quota": {"storage": 4096}})
    try:
        c = Client(server)
        assert b"l1 OK" in c.login()
        url = _source(c, 2 * MB)
        before = _messages(c)
        base = peak_rss(server)
        # A one-octet TEXT after each URL: every message is a new 2 MB string.
        parts = b" ".join(b'CATENATE (URL "%s" TEXT {1+}\r\n%d)' % (url, i % 10)
                          for i in range(15))
        out = c.command("a1", b"APPEND INBOX " + parts)
        assert re.search(rb"a1 NO \[OVERQUOTA\]", out), out
        assert _messages(c) == before
        grown = peak_rss(server) - base
        assert grown < 15 * MB, grown
        c.close()
    finally:
        server.daemon.stop()


@pytest.mark.parametrize("store", ["maildir", "mbox"])
def test_catenate_streams_to_the_store(tmp_path, tls_files, store):
    """
    Issue 18 item 4: a CATENATE message is streamed to the store's
    temporary file, never assembled in memory.  A 40 MB message of a 4 MB
    source named ten times (APPENDLIMIT raised to 48 MB), with TEXT parts
    between, grows the daemon's peak memory by far less than 40 MB on
    either store, and reads back byte for byte as the concatenation.
    """
    server = start_store_server(tmp_path, tls_files, store, 48 * MB)
    try:
        c = Client(server, timeout=120)
        assert b"l1 OK" in c.login()
        # Lines of 78 octets: the store's 1 MB chunks end inside CRLFs too;
        # a "From " line is quoted in an mbox and must come back unquoted.
        body = b"From here\r\n" + b"".join(b"%075d\r\n" % i for i in range(4 * MB // 78))
        source = b"Subject: big\r\n\r\n" + body
        c.send(b"s1 APPEND INBOX {%d+}\r\n" % len(source) + source + b"\r\n")
        uidvalidity, uid = re.search(rb"APPENDUID (\d+) (\d+)",
                                     c.expect(rb"s1 [^\n]*\n")).groups()
        url = b"/INBOX;UIDVALIDITY=%s/;UID=%s" % (uidvalidity, uid)
        texts = [b"X-Part: %d\r\n" % i for i in range(10)]
        parts = b" ".join(b'TEXT {%d+}\r\n%s URL "%s"' % (len(t), t, url) for t in texts)
        expected = b"".join(t + source for t in texts)
        base = reset_peak(server)
        out = c.command("a1", b"APPEND INBOX CATENATE (" + parts + b")")
        grown = peak_rss(server) - base
        new_uid = int(re.search(rb"a1 OK \[APPENDUID \d+ (\d+)\]", out)[1])
        print(f"{store}: peak RSS grew by {grown / MB:.1f} MB for a "
              f"{len(expected) / MB:.1f} MB message")
        # Both stores: the mbox store parses what it appended a window at
        # a time (storage.mbox.source); it once read a copy back whole.
        assert grown < 16 * MB, grown
        assert b"se OK" in c.command("se", b"SELECT INBOX")
        assert fetch_body(c, "f1", new_uid) == expected
        c.close()
    finally:
        server.daemon.stop()
