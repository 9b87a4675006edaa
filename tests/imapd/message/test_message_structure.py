# -*- test-case-name: tests.imapd.message.test_message_structure -*-
"""
Tests for BODY and BODYSTRUCTURE (RFC 3501 section 7.4.2) and the MIME
tree behind them.
"""

from imapd.message import Message
from imapd.message._structure import MAX_PARTS


def test_plain_message_defaults():
    """No Content-Type means text/plain; charset=us-ascii, 7bit (RFC 2045 section 5.2)."""
    m = Message(b"Subject: x\r\n\r\nline 1\r\nline 2\r\n")
    assert m.bodystructure(False) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 2)')
    assert m.bodystructure(True) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 2 NIL NIL NIL NIL)')


def test_rfc3501_example_shape():
    """The RFC 3501 section 7.4.2 example: two text parts in a multipart/mixed."""
    raw = (b"Content-Type: multipart/mixed; boundary=x\r\n\r\n"
           b"--x\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n"
           + b"a\r\n" * 3 + b"b" + b"\r\n--x\r\n"
           b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff\r\n"
           b"Content-ID: <960723163407.20117h@cac.washington.edu>\r\n"
           b"Content-Description: Compiler diff\r\n"
           b"Content-Transfer-Encoding: BASE64\r\n\r\n"
           b"Zm9v\r\n--x--\r\n")
    assert Message(raw).bodystructure(False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 10 3)'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
        b'"<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4 0) "mixed")')


def test_extension_data():
    """md5, disposition with parameters, language list and location (RFC 3501 section 9)."""
    raw = (b"Content-Type: multipart/mixed; boundary=\"b b\"\r\n"
           b"Content-Language: en, de\r\n\r\n"
           b"--b b\r\n"
           b"Content-Type: application/pdf; name=\"a.pdf\"\r\n"
           b"Content-Disposition: attachment;\r\n filename=\"a b.pdf\"\r\n"
           b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
           b"Content-Language: fr\r\n"
           b"Content-Location: http://x/a.pdf\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n"
           b"AAAA\r\n--b b--\r\n")
    assert Message(raw).bodystructure(True) == (
        b'(("application" "pdf" ("name" "a.pdf") NIL NIL "base64" 4 '
        b'"Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename" "a b.pdf")) ("fr") '
        b'"http://x/a.pdf") "mixed" ("boundary" "b b") NIL ("en" "de") NIL)')


def test_disposition_without_params():
    """A disposition without parameters has a NIL parameter list."""
    raw = b"Content-Disposition: inline\r\n\r\nx"
    assert Message(raw).bodystructure(True).endswith(b'1 0 NIL ("inline" NIL) NIL NIL)')


def test_message_rfc822_part():
    """message/rfc822 carries the encapsulated envelope, body structure and its line count."""
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
           b"Subject: inner\r\nFrom: x@y\r\n\r\nhi\r\n"
           b"--b--\r\n")
    assert Message(raw).bodystructure(False) == (
        b'(("message" "rfc822" NIL NIL NIL "7bit" 31 '
        b'(NIL "inner" ((NIL NIL "x" "y")) ((NIL NIL "x" "y")) ((NIL NIL "x" "y")) '
        b'NIL NIL NIL NIL NIL) '
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 2 0) 3) "mixed")')


def test_digest_default_type():
    """Parts of multipart/digest default to message/rfc822 (RFC 2046 section 5.1.5)."""
    raw = (b"Content-Type: multipart/digest; boundary=b\r\n\r\n"
           b"--b\r\n\r\nSubject: one\r\n\r\nbody one\r\n--b--\r\n")
    m = Message(raw)
    assert m.bodystructure(False).startswith(b'(("message" "rfc822" NIL NIL NIL "7bit" 24 (NIL "one"')
    assert m.section((1,), "HEADER") == b"Subject: one\r\n\r\n"
    assert m.section((1, 1), None) == b"body one"


def test_rfc2231_parameters_joined():
    """RFC 2231 continuations are joined; an extended value is reported as name*."""
    raw = (b"Content-Type: text/plain; charset=utf-8;\r\n"
           b" title*0*=us-ascii'en'This%20is%20; title*1*=%2A%2Afun;\r\n"
           b" name*0=\"plain \"; name*1=\"joined\"\r\n\r\nx")
    assert Message(raw).bodystructure(False) == (
        b'("text" "plain" ("charset" "utf-8" "title*" "us-ascii\'en\'This%20is%20%2A%2Afun" '
        b'"name" "plain joined") NIL NIL "7bit" 1 0)')


def test_eight_bit_parameter_is_literal():
    """An 8-bit parameter value goes out as a literal."""
    raw = b"Content-Type: application/octet-stream; name=\"\xe9.txt\"\r\n\r\nx"
    assert b'("name" {5}\r\n\xe9.txt)' in Message(raw).bodystructure(False)


def test_multipart_without_boundary_parameter():
    """A multipart with no boundary parameter is one opaque text part, readable as BODY[1]."""
    m = Message(b"Content-Type: multipart/mixed\r\n\r\n--x\r\nbody\r\n")
    assert m.bodystructure(False) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 2)')
    assert m.section((1,), None) == b"--x\r\nbody\r\n"


def test_part_without_header_and_empty_part():
    """A part that starts with the empty line has no header; an empty part has size 0."""
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\n\r\nbare\r\n--b\r\n--b\r\nContent-Type: text/html\r\n--b--\r\n")
    m = Message(raw)
    assert m.bodystructure(False) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 0)'
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
        b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")')
    assert m.section((2,), None) == b""
    assert m.section((3,), "MIME") == b"Content-Type: text/html"


def test_nested_missing_inner_close():
    """An inner multipart without its close delimiter ends at the outer delimiter."""
    raw = (b"Content-Type: multipart/mixed; boundary=out\r\n\r\n"
           b"--out\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n"
           b"--in\r\n\r\nA\r\n--in\r\n\r\nB\r\n"
           b"--out\r\n\r\nC\r\n--out--\r\n")
    m = Message(raw)
    assert m.section((1, 1), None) == b"A"
    assert m.section((1, 2), None) == b"B"
    assert m.section((2,), None) == b"C"


def test_lf_only_boundaries():
    """Delimiters preceded by bare LF still split the parts, without the LF."""
    raw = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n--b--\n"
    m = Message(raw)
    assert m.section((1,), None) == b"one"
    assert m.section((2,), None) == b"two"


def test_part_count_is_limited():
    """A hostile message with more parts than Dovecot's limit still parses, capped."""
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * (MAX_PARTS + 50)
    m = Message(raw)
    bs = m.bodystructure(False)
    assert bs.count(b'("text"') < MAX_PARTS
    assert m.section((MAX_PARTS + 10,), None) is None


def test_deep_nesting_is_limited():
    """Nesting deeper than the limit does not exhaust the stack."""
    raw = b"Content-Type: message/rfc822\r\n\r\n" * 5000 + b"body"
    m = Message(raw)
    assert m.bodystructure(True).startswith(b'("message" "rfc822"')
    assert len(m.envelope()) > 0


def test_body_not_parsed_for_envelope():
    """ENVELOPE and header access never build the MIME tree (lazy parsing)."""
    m = Message(b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n")
    m.envelope()
    m.header_fields("subject")
    m.header_bytes()
    assert m._root is None


def test_unquoted_parameter_with_spaces():
    """An unquoted value with spaces (mail-gem attachment_with_unquoted_name) is kept whole."""
    raw = (b"Content-Type: text/plain; name=This is a test.txt\r\n"
           b"Content-Disposition: attachment;\r\n\tfilename=This is a test.txt (c)\r\n\r\nx")
    assert Message(raw).bodystructure(True) == (
        b'("text" "plain" ("charset" "us-ascii" "name" "This is a test.txt") NIL NIL "7bit" 1 0 '
        b'NIL ("attachment" ("filename" "This is a test.txt")) NIL NIL)')


def test_odd_transfer_encodings():
    """A malformed Content-Transfer-Encoding naming a known one is sent by its proper name; BINARY decodes it."""
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Transfer-Encoding: quoted printable\r\n\r\na=3D\r\n"
           b"--b\r\nContent-Transfer-Encoding: quoted-printable; (why)\r\n\r\nb=3D\r\n--b--\r\n")
    m = Message(raw)
    bs = m.bodystructure(False)
    assert bs.count(b'"quoted-printable" 4 0)') == 2
    assert m.binary_section((1,)) == b"a="
    assert m.binary_section((2,)) == b"b="


def test_doubled_carriage_returns():
    """Delimiter lines ending in CR CR LF or trailing blanks still delimit."""
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\r\n\r\none\r\n--b \t\r\n\r\ntwo\r\n--b--\r\r\n")
    m = Message(raw)
    assert m.section((1,), None) == b"one"
    assert m.section((2,), None) == b"two"
