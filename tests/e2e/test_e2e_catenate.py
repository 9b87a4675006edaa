"""
CATENATE and BINARY against the real daemon, whose store calls run in the
storage thread pool: the URL check that decides between a continuation
and NO [BADURL] (RFC 4469 Appendix A) happens there while input waits.
"""

from __future__ import annotations

import re
import socket
import ssl


class Client:
    """A raw IMAP client over implicit TLS that reads up to what it expects."""

    def __init__(self, server) -> None:
        raw = socket.create_connection((server.host, server.tls_port), timeout=10)
        self.sock = server.ssl_context().wrap_socket(raw, server_hostname="localhost")
        self.buf = b""
        self.expect(rb"\* OK [^\n]*\n")

    def expect(self, pattern: bytes) -> bytes:
        """Read until C{pattern} matches; return and consume everything up to its end."""
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.buf)
            if m:
                out, self.buf = self.buf[: m.end()], self.buf[m.end() :]
                return out
            chunk = self.sock.recv(65536)
            assert chunk, self.buf
            self.buf += chunk

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


def test_catenate_and_literal8_over_tls(imapd_server):
    """Good URLs get the continuation, a bad one NO [BADURL] in its place, and the session goes on."""
    s = imapd_server
    c = Client(s)
    c.send(f'l1 LOGIN {s.user} "{s.password}"\r\n'.encode())
    assert b"l1 OK" in c.expect(rb"l1 [^\n]*\n")
    msg = b"Subject: src\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\n\x02"
    c.send(b"a1 APPEND INBOX ~{%d}\r\n" % len(msg))
    c.expect(rb"\+ [^\n]*\n")
    c.send(msg + b"\r\n")
    uidvalidity, uid = re.search(rb"a1 OK \[APPENDUID (\d+) (\d+)\]", c.expect(rb"a1 [^\n]*\n")).groups()
    url = b"/INBOX;UIDVALIDITY=%s/;UID=%s" % (uidvalidity, uid)
    # Good URL, then a synchronizing TEXT: continuation after the check.
    c.send(b'a2 APPEND INBOX CATENATE (URL "' + url + b'/;SECTION=HEADER" TEXT {5}\r\n')
    c.expect(rb"\+ [^\n]*\n")
    c.send(b"hello)\r\n")
    assert re.search(rb"a2 OK \[APPENDUID \d+ \d+\]", c.expect(rb"a2 [^\n]*\n"))
    # Bad URL: the tagged NO instead of the continuation; the next command works.
    c.send(b'a3 APPEND INBOX CATENATE (URL "/INBOX/;UID=999" TEXT {5}\r\n')
    assert c.expect(rb"a3 [^\n]*\n") == b"a3 NO [BADURL /INBOX/;UID=999] No such message\r\n"
    c.send(b"s1 SELECT INBOX\r\n")
    c.expect(rb"s1 OK[^\n]*\n")
    c.send(b"f1 FETCH 1:* (BINARY.PEEK[1] RFC822.SIZE)\r\n")
    out = c.expect(rb"f1 OK[^\n]*\n")
    assert b"* 1 FETCH (BINARY[1] ~{4}\r\n\x00\x01\n\x02" in out, out
    assert b"* 2 FETCH (BINARY[1] {" in out and b"* 3 FETCH" not in out, out
    c.close()
