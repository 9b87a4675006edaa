"""
BINARY (RFC 3516): FETCH BINARY[...], BINARY.PEEK[...], BINARY.SIZE[...]
with the transfer encoding removed, NO [UNKNOWN-CTE] for encodings we
cannot undo, literal8 in FETCH answers and in APPEND, on each store.

Expected bytes come from Python's C{email} package (an independent MIME
decoder), never from the server under test.
"""

import email
import re
from pathlib import Path

import pytest

CORPUS = Path("/work/shared/corpus/mail-gem")
PDF_MAIL = CORPUS / "attachment_emails/cur/attachment_pdf.eml"
UUENCODE_MAIL = CORPUS / "error_emails/cur/content_transfer_encoding_x_uuencode.eml"


def append(conv, data: bytes, literal8: bool = False, tag: str = "a1") -> str:
    """APPEND C{data} to INBOX as a non-synchronizing literal (or literal8)."""
    prefix = b"~" if literal8 else b""
    conv.send(b"%s APPEND INBOX %s{%d+}\r\n" % (tag.encode(), prefix, len(data)) + data + b"\r\n")
    last = conv.lines()[-1]
    assert last.startswith(f"{tag} OK [APPENDUID "), last
    return last


_ITEM = re.compile(rb"(~?)\{(\d+)\}\r\n")


def fetch_items(conv, command: bytes) -> dict[bytes, tuple[str, object]]:
    """
    Send one FETCH for one message and return its items as
    C{name -> (form, value)}, where form is C{literal8}, C{literal},
    C{quoted}, C{nil} or C{number}.  The tagged line must be OK.
    """
    conv.send(command + b"\r\n")
    raw = conv.output()
    tag = command.split(b" ", 1)[0]
    assert raw.endswith(b"\r\n") and raw.rsplit(b"\r\n", 2)[-2].startswith(tag + b" OK"), raw[-200:]
    start = raw.index(b" FETCH (") + len(b" FETCH (")
    items: dict[bytes, tuple[str, object]] = {}
    pos = start
    while raw[pos : pos + 1] != b")":
        end = raw.index(b" ", pos)
        # Item names with a section may contain spaces only in HEADER.FIELDS,
        # which these tests do not ask for.
        name = raw[pos:end]
        pos = end + 1
        m = _ITEM.match(raw, pos)
        if m:
            size = int(m.group(2))
            value = raw[m.end() : m.end() + size]
            items[name] = ("literal8" if m.group(1) else "literal", value)
            pos = m.end() + size
        elif raw[pos : pos + 1] == b'"':
            close = raw.index(b'"', pos + 1)
            items[name] = ("quoted", raw[pos + 1 : close])
            pos = close + 1
        elif raw[pos : pos + 3] == b"NIL":
            items[name] = ("nil", None)
            pos += 3
        elif raw[pos : pos + 1] == b"(":
            close = raw.index(b")", pos)
            items[name] = ("list", raw[pos : close + 1])
            pos = close + 1
        else:
            m = re.compile(rb"\d+").match(raw, pos)
            assert m, raw[pos : pos + 40]
            items[name] = ("number", int(m.group()))
            pos = m.end()
        if raw[pos : pos + 1] == b" ":
            pos += 1
    return items


def decoded_parts(raw: bytes) -> list[bytes]:
    """The decoded payload of every leaf part, in part-number order (1, 2...)."""
    msg = email.message_from_bytes(raw)
    return [p.get_payload(decode=True) for p in msg.walk() if not p.is_multipart()]


def test_advertised(authed):
    """RFC 3516 section 4.1: BINARY is in the capability list once logged in."""
    assert "BINARY" in authed.ok("c1 CAPABILITY")[0].split()


def test_base64_and_qp_parts_of_a_corpus_message(authed):
    """BINARY[1] undoes quoted-printable, BINARY[2] base64 (a real PDF), equal to email's decoding."""
    raw = PDF_MAIL.read_bytes()
    text, pdf = decoded_parts(raw)
    assert pdf.startswith(b"%PDF") and text  # the oracle itself decoded something
    append(authed, raw)
    authed.ok("s1 SELECT INBOX")
    items = fetch_items(authed, b"f1 FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[1] BINARY.SIZE[2])")
    assert items[b"BINARY[2]"][1] == pdf
    # A PDF has 8-bit octets but no NUL here: RFC 3516 section 4.3 wants a
    # plain string then, literal8 only when NUL is present.
    assert items[b"BINARY[2]"][0] == ("literal8" if b"\0" in pdf else "literal")
    assert items[b"BINARY[1]"][1].replace(b"\r\n", b"\n") == text.replace(b"\r\n", b"\n")
    assert b"=\r\n" not in items[b"BINARY[1]"][1] and b"=20" not in items[b"BINARY[1]"][1]
    # BINARY.SIZE must equal the length of what BINARY[] returns (section 4.3).
    assert items[b"BINARY.SIZE[1]"] == ("number", len(items[b"BINARY[1]"][1]))
    assert items[b"BINARY.SIZE[2]"] == ("number", len(pdf))


def test_binary_sets_seen_but_peek_and_size_do_not(authed):
    """RFC 3516 section 4.2: BINARY[] sets \\Seen, BINARY.PEEK and BINARY.SIZE do not."""
    append(authed, PDF_MAIL.read_bytes())
    authed.ok("s1 SELECT INBOX")
    items = fetch_items(authed, b"f1 FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[2] FLAGS)")
    assert b"\\Seen" not in items[b"FLAGS"][1]
    authed.send(b"f2 FETCH 1 (BINARY[1])\r\n")
    out = authed.output()
    assert b"\\Seen" in out and out.endswith(b"f2 OK FETCH completed\r\n"), out[-300:]


def test_partial_refers_to_decoded_data(authed):
    """RFC 3516 section 4.2: <offset.length> counts octets of the decoded data; the answer names the origin."""
    raw = PDF_MAIL.read_bytes()
    pdf = decoded_parts(raw)[1]
    append(authed, raw)
    authed.ok("s1 SELECT INBOX")
    items = fetch_items(authed, b"f1 FETCH 1 (BINARY.PEEK[2]<4.10> BINARY.PEEK[2]<1000000.5>)")
    assert items[b"BINARY[2]<4>"][1] == pdf[4:14]
    # An origin past the end gives the empty string (RFC 3501 section 6.4.5).
    assert items[b"BINARY[2]<1000000>"] == ("quoted", b"")


def test_unknown_cte_is_no_unknown_cte(authed):
    """RFC 3516 section 4.3: x-uuencode can't be decoded: BINARY and BINARY.SIZE fail with NO [UNKNOWN-CTE]."""
    append(authed, UUENCODE_MAIL.read_bytes())
    authed.ok("s1 SELECT INBOX")
    authed.script(
        """
        C: f1 FETCH 1 (BINARY.PEEK[2])
        S: f1 NO [UNKNOWN-CTE] {{.*}}
        C: f2 FETCH 1 (BINARY.SIZE[2])
        S: f2 NO [UNKNOWN-CTE] {{.*}}
        C: f3 FETCH 1 (BINARY.SIZE[1] FLAGS)
        S: * 1 FETCH (BINARY.SIZE[1] {{\\d+}} FLAGS ({{[^)]*}}))
        S: f3 OK FETCH completed
        """
    )
    # The failed BINARY (not .PEEK) must not have set \Seen either.
    assert authed.ok("f4 FETCH 1 (FLAGS)")[0] == "* 1 FETCH (FLAGS (\\Recent))"


def test_missing_part_and_bad_section(authed):
    """A part the message lacks is NIL (size 0); a text specifier is not a section-binary (BAD)."""
    append(authed, b"Subject: x\r\n\r\nhello\r\n")
    authed.ok("s1 SELECT INBOX")
    authed.script(
        """
        C: f1 FETCH 1 (BINARY.PEEK[3] BINARY.SIZE[3])
        S: * 1 FETCH (BINARY[3] NIL BINARY.SIZE[3] 0)
        S: f1 OK FETCH completed
        C: f2 FETCH 1 (BINARY.PEEK[1.TEXT])
        S: f2 BAD {{.*}}
        """
    )


def test_literal8_append_with_nul_round_trips(authed, new_conv):
    """RFC 3516 section 4.4: an APPEND ~{n} message holding NUL is stored and returned octet for octet."""
    # Every octet value, NUL included; LF only as part of CRLF, so the
    # part is kept as it is (see the bare-LF test below for the other case).
    body = bytes(range(256)).replace(b"\n", b"\r\n") * 3
    msg = (
        b"Subject: binary\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + body
    )
    # Synchronizing literal8: the server asks for the octets first.
    authed.send(b"a1 APPEND INBOX (\\Flagged) ~{%d}\r\n" % len(msg))
    assert authed.lines() == ["+ Ready for literal data"]
    authed.send(msg + b"\r\n")
    assert authed.lines()[-1].startswith("a1 OK [APPENDUID ")
    # Non-synchronizing literal8 (RFC 4466 allows ~{n+} with LITERAL+).
    append(authed, msg, literal8=True, tag="a2")
    # Read back from a fresh session, so nothing comes from a cache of ours.
    other = new_conv()
    other.login()
    other.ok("s1 SELECT INBOX")
    for seq in (b"1", b"2"):
        items = fetch_items(other, b"f%s FETCH %s (BINARY.PEEK[] BINARY.SIZE[] BINARY.PEEK[1] BINARY.SIZE[1])" % (seq, seq))
        assert items[b"BINARY[]"] == ("literal8", msg)
        assert items[b"BINARY.SIZE[]"] == ("number", len(msg))
        assert items[b"BINARY[1]"] == ("literal8", body)
        assert items[b"BINARY.SIZE[1]"] == ("number", len(body))
    # A partial that avoids the NUL octet is an ordinary literal.
    items = fetch_items(other, b"f3 FETCH 1 (BINARY.PEEK[1]<65.10>)")
    assert items[b"BINARY[1]<65>"] == ("literal", body[65:75])
    # BODY[] and RFC822 are literals, which may not carry NUL (RFC 3501
    # section 9): NUL comes as 0x80 there, sizes unchanged.
    items = fetch_items(other, b"f4 FETCH 1 (BODY.PEEK[] BODY.PEEK[1] RFC822.SIZE)")
    assert items[b"BODY[]"] == ("literal", msg.replace(b"\0", b"\x80"))
    assert items[b"BODY[1]"] == ("literal", body.replace(b"\0", b"\x80"))
    assert items[b"RFC822.SIZE"] == ("number", len(msg))


def test_literal8_binary_part_with_bare_lf(authed, new_conv):
    """
    RFC 3516 section 4.4: the server may change the encoding of appended
    binary data if nothing is lost.  Our stores hand messages back with
    CRLF line ends, so a binary part holding a LF without CR is stored as
    base64; BINARY[1] still returns every octet as sent.
    """
    blob = bytes(range(256)) * 2 + b"\n\n\r"
    msg = (b"Subject: b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
           b"--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
           b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
           + blob + b"\r\n--XX--\r\n")
    append(authed, msg, literal8=True)
    other = new_conv()
    other.login()
    other.ok("s1 SELECT INBOX")
    items = fetch_items(other, b"f1 FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2] BINARY.PEEK[1] BODY.PEEK[2.MIME])")
    assert items[b"BINARY[2]"] == ("literal8", blob)
    assert items[b"BINARY.SIZE[2]"] == ("number", len(blob))
    assert items[b"BINARY[1]"] == ("literal", b"hello")
    assert b"Content-Transfer-Encoding: base64" in items[b"BODY[2.MIME]"][1]
    # The oracle agrees: the stored message decodes to the same octets.
    items = fetch_items(other, b"f2 FETCH 1 (BODY.PEEK[])")
    assert decoded_parts(items[b"BODY[]"][1])[1] == blob


def test_plain_literal_is_not_reencoded(authed):
    """Only literal8 messages are treated as binary: a {n} message's bare LF is just a sloppy line end."""
    msg = b"Subject: b\r\nContent-Transfer-Encoding: binary\r\n\r\nline\nline\r\n"
    append(authed, msg)
    authed.ok("s1 SELECT INBOX")
    items = fetch_items(authed, b"f1 FETCH 1 (BODY.PEEK[])")
    assert items[b"BODY[]"] == ("literal", msg.replace(b"line\nline", b"line\r\nline"))


@pytest.mark.parametrize("encoding, encoded, decoded", [
    # RFC 2045 section 6.7: soft line breaks and =XX escapes go away.
    (b"quoted-printable", b"caf=C3=A9 au lait =\r\nand more=3D\r\n", "café au lait and more=\r\n".encode()),
    # RFC 2045 section 6.7 rule (3): white space ending an encoded line
    # was added in transport and is deleted, also before a soft break
    # ("= " then CRLF); an encoded =20 stays.  (Python's quopri keeps it,
    # so the expected octets are written out here.)  Dovecot 2.3 decodes
    # this part alike: 55 octets.
    (b"quoted-printable",
     b"Caf=c3=a9 au lait =3D tasty, soft= \r\n break here.   \r\nSecond line=20\r\n",
     "Café au lait = tasty, soft break here.\r\nSecond line \r\n".encode()),
    (b"quoted-printable", b"tab\t\t\r\nlast line  ", b"tab\r\nlast line"),
    # RFC 2045 section 6.8: line breaks inside base64 are ignored.
    (b"base64", b"AAEC\r\nAwQA\r\n", b"\x00\x01\x02\x03\x04\x00"),
    # Identity encodings (section 6.2): the part as stored, trailing
    # white space included.
    (b"7bit", b"plain  \r\ntext\r\n", b"plain  \r\ntext\r\n"),
    (b"8bit", "naïve \r\n".encode(), "naïve \r\n".encode()),
    (b"binary", b"raw\x01 \r\n", b"raw\x01 \r\n"),
])
def test_decoding_small_parts(authed, encoding, encoded, decoded):
    """Hand-made parts: each encoding decodes to the exact octets; NUL makes the answer literal8."""
    msg = (b"Subject: t\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: %s\r\n\r\n%s"
           % (encoding, encoded))
    append(authed, msg)
    authed.ok("s1 SELECT INBOX")
    items = fetch_items(authed, b"f1 FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])")
    assert items[b"BINARY[1]"] == ("literal8" if b"\0" in decoded else "literal", decoded)
    assert items[b"BINARY.SIZE[1]"] == ("number", len(decoded))
