# -*- test-case-name: tests.security.test_sec_catenate -*-
"""
Issue 18 item 4: CATENATE amplification.  A few hundred octets of
MULTIAPPEND naming one large message many times must not make the daemon
assemble (in memory or on disk) more than APPENDLIMIT in all, and a quota
must refuse before anything is assembled.  Against the real daemon.
"""

from __future__ import annotations

import re

from sec_content_helpers import Client, peak_rss, rss, start_server

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
