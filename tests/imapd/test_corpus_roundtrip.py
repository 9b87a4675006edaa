"""
Every message of the spamassassin corpus through APPEND and back (issue
"Foundation", corpus test): BODY[] is byte-exact, RFC822.SIZE is its length,
BODY[HEADER] + BODY[TEXT] == BODY[], every part number in BODYSTRUCTURE can be
fetched with the size BODYSTRUCTURE states, and ENVELOPE agrees with Python's
C{email} package.  Responses are parsed with imapclient's parser, not ours,
so the two sides of each check are independent.
"""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

from imapclient.response_parser import parse_fetch_response

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "spamassassin"
if not CORPUS.is_dir():  # the checkout sits beside shared/ (README)
    CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "spamassassin"


def corpus_messages() -> list[bytes]:
    out = []
    for path in sorted(CORPUS.glob("*/cur/*")):
        data = path.read_bytes()
        if data.startswith(b"From "):  # the mbox envelope line an MUA strips
            data = data.split(b"\n", 1)[1]
        out.append(re.sub(rb"\r?\n", b"\r\n", data))
    return out


def split_responses(raw: bytes) -> list:
    """Cut server output into imaplib-style items: bytes or (line, literal) tuples."""
    items, pos = [], 0
    while pos < len(raw):
        end = raw.index(b"\r\n", pos)
        line = raw[pos:end]
        pos = end + 2
        m = re.search(rb"\{(\d+)\}$", line)
        if m:
            n = int(m.group(1))
            items.append((line, raw[pos : pos + n]))
            pos += n
        else:
            items.append(line)
    return items


def _strip(line: bytes) -> bytes:
    """imaplib hands the parser C{1 (...)} for C{* 1 FETCH (...)}."""
    return re.sub(rb"^\* (\d+) FETCH ", rb"\1 ", line)


def fetch(conv, command: str) -> dict:
    conv.send(command.encode() + b"\r\n")
    raw = conv.output()
    assert raw.endswith(b" OK UID FETCH completed\r\n"), raw[-300:]
    items = split_responses(raw)[:-1]
    # imaplib hands the parser each response without the leading "* ".
    cleaned = []
    for it in items:
        if isinstance(it, tuple):
            cleaned.append((_strip(it[0]), it[1]))
        else:
            cleaned.append(_strip(it))
    return parse_fetch_response(cleaned)


def part_sizes(bs, prefix: tuple[int, ...], out: dict) -> None:
    """
    Walk an imapclient BODYSTRUCTURE into {part number: size}.  imapclient
    gives a top-level multipart as C{([parts], subtype, ...)} and one nested
    in message/rfc822 as C{(part, part, ..., subtype, ...)}.
    """
    if isinstance(bs[0], list):
        children = bs[0]
    else:
        children = []
        for c in bs:  # the parts are the leading run, before the subtype
            if not isinstance(c, (list, tuple)):
                break
            children.append(c)
    if children:
        for i, child in enumerate(children, 1):
            part_sizes(child, prefix + (i,), out)
        return
    number = prefix or (1,)
    out[number] = bs[6]
    if bs[0].upper() == b"MESSAGE" and bs[1].upper() == b"RFC822" and len(bs) > 8:
        inner = bs[8]
        if isinstance(inner[0], (list, tuple)):
            part_sizes(inner, number, out)
        else:
            out[number + (1,)] = inner[6]


def unfold(value: str) -> bytes:
    return re.sub(r"\r?\n(?=[ \t])", "", value).strip().encode("ascii")


def test_spamassassin_corpus_roundtrip(authed):
    """All 6,046 messages: exact bytes, sizes, header+text, parts, envelope."""
    messages = corpus_messages()
    assert len(messages) == 6046
    for i, data in enumerate(messages):
        authed.send(b"a%d APPEND INBOX {%d+}\r\n" % (i, len(data)) + data + b"\r\n")
        out = authed.output()
        assert b"a%d OK [APPENDUID" % i in out, out
    authed.ok("s1 SELECT INBOX")
    envelope_checked = 0
    for uid, data in enumerate(messages, 1):
        r = fetch(authed, f"u{uid} UID FETCH {uid} (BODY.PEEK[] RFC822.SIZE "
                          "BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODYSTRUCTURE ENVELOPE)")[uid]
        assert r[b"BODY[]"] == data, uid
        assert r[b"RFC822.SIZE"] == len(data), uid
        assert r[b"BODY[HEADER]"] + r[b"BODY[TEXT]"] == data, uid
        sizes: dict = {}
        part_sizes(r[b"BODYSTRUCTURE"], (), sizes)
        wanted = " ".join("BODY.PEEK[%s]" % ".".join(map(str, p)) for p in sizes)
        parts = fetch(authed, f"p{uid} UID FETCH {uid} ({wanted})")[uid]
        for p, size in sizes.items():
            got = parts[b"BODY[%s]" % ".".join(map(str, p)).encode()]
            assert len(got or b"") == size, (uid, p, size, len(got or b""))
        parsed = email.message_from_bytes(data, policy=email.policy.compat32)
        env = r[b"ENVELOPE"]
        for field, value in (("Subject", env.subject), ("Message-ID", env.message_id)):
            raw = parsed.get(field)
            if raw is None or not isinstance(raw, str) or not raw.isascii():
                continue
            assert (value or b"").strip() == unfold(raw), (uid, field, value, raw)
            envelope_checked += 1
    # Nearly every message has an ASCII Subject and Message-ID to compare.
    assert envelope_checked > 11000
