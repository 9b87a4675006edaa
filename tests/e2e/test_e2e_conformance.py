"""
Issue 13's rules and extensions against the real daemon (storage calls in
the thread pool, the per-node index on): BINARY.SIZE of a
quoted-printable part, FETCH after another session's EXPUNGE completing
OK [EXPUNGEISSUED], and URLAUTH from GENURLAUTH to URLFETCH with PREVIEW
and SAVEDATE on the same message.
"""

from __future__ import annotations

import re

from test_e2e_catenate import Client

QP = (b"Subject: qp\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
      b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
      b"Caf=C3=A9 soft= \r\nbreak   \r\n")


def _login(s) -> Client:
    c = Client(s)
    c.send(f'l1 LOGIN {s.user} "{s.password}"\r\n'.encode())
    assert b"l1 OK" in c.expect(rb"l1 [^\n]*\n")
    return c


def test_issue13_over_the_wire(imapd_server):
    """BINARY.SIZE = len(BINARY[1]); OK [EXPUNGEISSUED]; GENURLAUTH then URLFETCH; PREVIEW; SAVEDATE."""
    s = imapd_server
    c = _login(s)
    c.send(b"c0 CREATE Conf13\r\n")
    c.expect(rb"c0 [^\n]*\n")
    for tag in (b"a1", b"a2"):
        c.send(tag + b" APPEND Conf13 {%d+}\r\n" % len(QP) + QP + b"\r\n")
        c.expect(tag + rb" OK[^\n]*\n")
    c.send(b"s1 SELECT Conf13\r\n")
    out = c.expect(rb"s1 OK[^\n]*\n")
    v = int(re.search(rb"UIDVALIDITY (\d+)", out).group(1))
    c.send(b"f1 FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1] PREVIEW SAVEDATE)\r\n")
    out = c.expect(rb"f1 OK[^\n]*\n")
    decoded = "Café softbreak\r\n".encode()  # "= " then CRLF: a soft break
    assert b"BINARY.SIZE[1] %d BINARY[1] {%d}\r\n%s" % (len(decoded), len(decoded), decoded) in out, out
    assert b"PREVIEW {15}\r\nCaf\xc3\xa9 softbreak" in out and b'SAVEDATE "' in out, out
    # URLAUTH round trip.
    rump = f"imap://{s.user}@localhost/Conf13;UIDVALIDITY={v}/;UID=1/;SECTION=1;URLAUTH=authuser"
    c.send(f'g1 GENURLAUTH "{rump}" INTERNAL\r\n'.encode())
    url = re.search(rb'\* GENURLAUTH "([^"]+)"', c.expect(rb"g1 OK[^\n]*\n")).group(1)
    c.send(b'u1 URLFETCH ("' + url + b'" BINARY)\r\n')
    out = c.expect(rb"u1 OK[^\n]*\n")
    assert b"(BINARY {%d}\r\n%s)" % (len(decoded), decoded) in out, out
    # Another session expunges message 2; this one's FETCH still completes OK.
    d = _login(s)
    d.send(b"s1 SELECT Conf13\r\nx1 STORE 2 +FLAGS.SILENT (\\Deleted)\r\nx2 EXPUNGE\r\n")
    d.expect(rb"x2 OK[^\n]*\n")
    c.send(b"f2 FETCH 1:2 (BODY.PEEK[TEXT])\r\n")
    out = c.expect(rb"f2 [^\n]*\n")
    assert out.endswith(b"f2 OK [EXPUNGEISSUED] Some messages were already expunged\r\n"), out
    assert b"* 2 FETCH (BODY[TEXT] NIL)" in out, out
    c.close()
    d.close()
