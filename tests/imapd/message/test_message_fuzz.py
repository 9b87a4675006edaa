# -*- test-case-name: tests.imapd.message.test_message_fuzz -*-
"""
Mutation fuzzing of L{imapd.message.Message}: every method must answer
without raising on any input, and the structure must stay consistent
(header + text == message; BODY[part] sizes agree with BODYSTRUCTURE).
"""

import random
import sys
import os

from imapd.message import Message
from imapd import charset

sys.path.insert(0, os.path.dirname(__file__))
from test_message_corpus import parse_wire, walk_body  # noqa: E402

SEED = (
    b"From: \"A, B\" <a@b.example>, Group: c@d;\r\n"
    b"To: =?utf-8?B?w6k=?= <e@f>\r\n"
    b"Subject: =?iso-8859-1?q?caf=E9?= =?utf-8?b?4oKs?=\r\n"
    b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    b"Content-Type: multipart/mixed; boundary=\"xx\"\r\n"
    b"\r\n"
    b"pre\r\n"
    b"--xx\r\n"
    b"Content-Type: text/plain; charset*0*=utf-8''%C3; charset*1=x\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"w6k=\r\n"
    b"--xx\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: in\r\n"
    b"Content-Type: multipart/alternative; boundary=yy\r\n"
    b"\r\n"
    b"--yy\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"a=3Db=\r\n"
    b"--yy--\r\n"
    b"--xx--\r\n"
    b"post\r\n"
)

_PIECES = [b"\r\n", b"\n", b"\r", b"--xx", b"--yy", b"--", b":", b";", b"\"", b"(", b")",
           b"<", b">", b"@", b",", b"=?", b"?=", b"?B?", b"?Q?", b"=", b"\x00", b"\xff",
           b" ", b"\t", b"Content-Type: message/rfc822\r\n", b"boundary=", b"*0*=", b"%"]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        pos = rng.randint(0, len(data))
        if op < 0.4:
            data[pos:pos] = rng.choice(_PIECES)
        elif op < 0.8:
            del data[pos:pos + rng.randint(1, 12)]
        else:
            data[pos:pos] = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 4)))
    return bytes(data)


def _exercise(raw: bytes) -> None:
    m = Message(raw)
    assert m.header_bytes() + m.text_bytes() == raw
    parse_wire(m.envelope())
    for extended in (False, True):
        tree = parse_wire(m.bodystructure(extended))
        for number, size in walk_body(tree):
            data = m.section(number, None)
            assert data is not None, number
            if size is not None:
                assert len(data) == size, number
            for text in ("MIME", "HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT"):
                m.section(number, text, (b"subject", b"from"))
            m.binary_section(number)
    m.section((), "HEADER.FIELDS", (b"to",))
    m.header_fields("subject")
    m.decoded_header("subject")
    m.decoded_header("from")
    m.sent_date()
    list(m.decoded_text())


def test_mutated_messages():
    """3,000 random mutations of a tricky message: nothing raises, structure stays consistent."""
    rng = random.Random(3501)
    for _ in range(3000):
        raw = _mutate(rng, SEED)
        try:
            _exercise(raw)
        except Exception as e:
            raise AssertionError("failed on %r" % (raw,)) from e


def test_random_header_values():
    """Random byte strings through the charset layer never raise."""
    rng = random.Random(2047)
    for _ in range(3000):
        value = bytes(rng.choice(b"=?_ QBqb\xe9\xff\x00utf-8iso88591abc\r\n'%*") for _ in range(rng.randint(0, 40)))
        charset.decode_words(value)
        charset.decode_param(value)
        charset.decode(value, value[:10].decode("latin-1"))
