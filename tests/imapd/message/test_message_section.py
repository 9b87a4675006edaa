# -*- test-case-name: tests.imapd.message.test_message_section -*-
"""
Tests for L{imapd.message.Message} header/text splitting and
BODY[section] (RFC 3501 section 6.4.5).
"""

from imapd.message import Message

NESTED = (
    b"From: A <a@example.com>\r\n"
    b"Subject: nested\r\n"
    b"Content-Type: multipart/mixed; boundary=outer\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"part one\r\n"
    b"--outer\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n"
    b"\r\n"
    b"--inner\r\n"
    b"\r\n"
    b"no header\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>html</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: inner message\r\n"
    b"X-Thing: 1\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--outer--\r\n"
    b"epilogue\r\n"
)


def test_header_and_text_split():
    """The header includes the empty line; the text is the rest."""
    m = Message(b"Subject: x\r\nFrom: y\r\n\r\nbody\r\n")
    assert m.header_bytes() == b"Subject: x\r\nFrom: y\r\n\r\n"
    assert m.text_bytes() == b"body\r\n"


def test_no_separator_is_all_header():
    """Without an empty line the whole message is header and the text is empty (Dovecot)."""
    raw = b"Subject: x\r\nFrom: y\r\n"
    m = Message(raw)
    assert m.header_bytes() == raw
    assert m.text_bytes() == b""


def test_empty_message():
    """An empty message has an empty header and text and never raises."""
    m = Message(b"")
    assert m.header_bytes() == b"" and m.text_bytes() == b""
    assert m.section((), None) == b""
    assert m.section((1,), None) == b""
    assert m.envelope() == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


def test_leading_empty_line():
    """A message starting with an empty line has an empty header (just that line)."""
    m = Message(b"\r\nbody\r\n")
    assert m.header_bytes() == b"\r\n"
    assert m.text_bytes() == b"body\r\n"


def test_lf_only_separator():
    """An LF-only empty line also ends the header."""
    m = Message(b"Subject: x\n\nbody\n")
    assert m.header_bytes() == b"Subject: x\n\n"
    assert m.text_bytes() == b"body\n"


def test_section_whole_and_header_text():
    """BODY[], BODY[HEADER] and BODY[TEXT] of the whole message."""
    m = Message(NESTED)
    assert m.section((), None) == NESTED
    assert m.section((), "HEADER") == m.header_bytes()
    assert m.section((), "TEXT") == m.text_bytes()
    assert m.section((), "MIME") is None


def test_section_of_non_multipart():
    """BODY[1] of a non-multipart message is its body; BODY[2] does not exist."""
    m = Message(b"Subject: x\r\n\r\nbody\r\n")
    assert m.section((1,), None) == b"body\r\n"
    assert m.section((2,), None) is None
    assert m.section((1, 1), None) is None


def test_section_parts():
    """Parts are numbered from 1; the CRLF before a delimiter is not part of the part."""
    m = Message(NESTED)
    assert m.section((1,), None) == b"part one"
    assert m.section((1,), "MIME") == b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    assert m.section((2, 1), None) == b"no header"
    assert m.section((2, 1), "MIME") == b"\r\n"
    assert m.section((2, 2), None) == b"<p>html</p>"
    assert m.section((2, 3), None) is None
    assert m.section((4,), None) is None
    assert m.section((0,), None) is None


def test_section_message_rfc822():
    """BODY[n] of message/rfc822 is the encapsulated message; n.HEADER/n.TEXT/n.1 reach into it."""
    m = Message(NESTED)
    assert m.section((3,), None) == b"Subject: inner message\r\nX-Thing: 1\r\n\r\ninner body"
    assert m.section((3,), "HEADER") == b"Subject: inner message\r\nX-Thing: 1\r\n\r\n"
    assert m.section((3,), "TEXT") == b"inner body"
    assert m.section((3, 1), None) == b"inner body"
    assert m.section((3,), "HEADER.FIELDS", (b"x-thing",)) == b"X-Thing: 1\r\n\r\n"


def test_header_and_text_only_for_message_parts():
    """n.HEADER and n.TEXT of a part that is not message/rfc822 do not exist."""
    m = Message(NESTED)
    assert m.section((1,), "HEADER") is None
    assert m.section((1,), "TEXT") is None
    assert m.section((1,), "HEADER.FIELDS", (b"subject",)) is None


def test_header_fields():
    """HEADER.FIELDS keeps message order and folding, matches names in any case, ends with CRLF."""
    m = Message(b"Subject: a\r\n b\r\nX: 1\r\nsubject: c\r\nTo: t\r\n\r\nbody")
    assert m.section((), "HEADER.FIELDS", (b"SUBJECT", b"to")) == (
        b"Subject: a\r\n b\r\nsubject: c\r\nTo: t\r\n\r\n")
    assert m.section((), "HEADER.FIELDS.NOT", (b"Subject",)) == b"X: 1\r\nTo: t\r\n\r\n"
    assert m.section((), "HEADER.FIELDS", (b"nothere",)) == b"\r\n"


def test_header_fields_last_line_without_crlf():
    """A field at the very end of a message without a line break still gets its CRLF."""
    m = Message(b"Subject: a")
    assert m.section((), "HEADER.FIELDS", (b"subject",)) == b"Subject: a\r\n\r\n"


def test_header_field_values():
    """header_fields returns unfolded, stripped raw values in order."""
    m = Message(b"Received: a\r\n\tb\r\nreceived:  c \r\nSubject : s\r\n\r\n")
    assert m.header_fields("RECEIVED") == [b"a\tb", b"c"]
    assert m.header_fields("subject") == [b"s"]
    assert m.header_fields("none") == []


def test_missing_close_boundary():
    """Without a close delimiter the last part runs to the end of the body."""
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n")
    m = Message(raw)
    assert m.section((1,), None) == b"one"
    assert m.section((2,), None) == b"two\r\n"


def test_multipart_without_parts():
    """A multipart with no delimiter at all gets one empty part, as Dovecot reports it."""
    m = Message(b"Content-Type: multipart/mixed; boundary=b\r\n\r\nno parts here\r\n")
    assert m.section((1,), None) == b""
    assert m.bodystructure(False) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")')


def test_longer_boundary_is_not_a_delimiter():
    """A line starting with the boundary followed by more characters does not delimit."""
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\n\r\none\r\n--bb\r\nstill one\r\n--b--\r\n")
    m = Message(raw)
    assert m.section((1,), None) == b"one\r\n--bb\r\nstill one"
    assert m.section((2,), None) is None


def test_binary_section():
    """BINARY[part] removes the transfer encoding; an unknown one gives None."""
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n"
           b"--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db=\r\nc\r\n"
           b"--b\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n"
           b"--b\r\nContent-Transfer-Encoding: 7-bit\r\n\r\nplain\r\n--b--\r\n")
    m = Message(raw)
    assert m.binary_section((1,)) == b"hello"
    assert m.binary_section((2,)) == b"a=bc"
    assert m.binary_section((3,)) is None
    assert m.binary_section((4,)) == b"plain"
    assert m.binary_section((5,)) is None
    assert m.binary_section(()) == raw
