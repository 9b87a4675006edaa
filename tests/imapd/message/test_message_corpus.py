# -*- test-case-name: tests.imapd.message.test_message_corpus -*-
"""
Whole-corpus checks of L{imapd.message.Message} against real, often broken
mail (see /work/shared/corpus/README.md).

Each message is converted from LF to CRLF, as the server presents it, and
otherwise used as stored (including the mbox C{From } line).  The checks:
nothing raises; header plus text is the message; every part number that
BODYSTRUCTURE describes exists as BODY[part] with exactly the size
BODYSTRUCTURE gives; and the ENVELOPE subject, message-id and from agree
with Python's C{email} package (policy compat32) reading the same fields.
"""

from __future__ import annotations

import email
import email.errors
import email.parser
import email.utils
import mailbox
import os
import re
from email import policy

import pytest
from pathlib import Path

from imapd.message import Message

SHARED = next(p / "shared" for p in Path(__file__).resolve().parents if (p / "shared" / "corpus").is_dir())
CORPUS = str(SHARED / "corpus")



def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _maildir_messages(name: str):
    root = os.path.join(CORPUS, name)
    for folder, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            path = os.path.join(folder, f)
            with open(path, "rb") as fh:
                yield path, _crlf(fh.read())


# -- a reader for our own wire output ---------------------------------------

_TOKEN = re.compile(rb'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|\{(\d+)\}\r\n|([^\s()"{]+))', re.S)


def parse_wire(data: bytes):
    """
    Parse an IMAP parenthesized structure (lists, quoted strings,
    literals, NIL, numbers) into Python lists, bytes, None and ints.
    """
    stack: list[list] = [[]]
    pos = 0
    while pos < len(data):
        m = _TOKEN.match(data, pos)
        if m is None:
            if not data[pos:].strip():
                break
            raise ValueError("bad wire data at %d: %r" % (pos, data[pos:pos + 40]))
        pos = m.end()
        if m.group(1):
            stack.append([])
        elif m.group(2):
            done = stack.pop()
            stack[-1].append(done)
        elif m.group(3) is not None:
            stack[-1].append(re.sub(rb"\\(.)", rb"\1", m.group(3)))
        elif m.group(4) is not None:
            n = int(m.group(4))
            stack[-1].append(data[pos:pos + n])
            pos += n
        else:
            atom = m.group(5)
            stack[-1].append(None if atom == b"NIL" else int(atom) if atom.isdigit() else atom)
    assert len(stack) == 1
    return stack[0][0]


def _children(body):
    # A multipart body is its child bodies followed by the subtype.
    children = []
    for child in body:
        if not isinstance(child, list):
            break
        children.append(child)
    return children


def walk_body(body, prefix=()):
    """
    Yield C{(part number, size)} for every part a BODYSTRUCTURE numbers,
    following RFC 3501 section 6.4.5: a multipart's children are 1..n;
    inside a message/rfc822 part the encapsulated message's parts, where a
    non-multipart message has only part 1, its body.
    """
    if isinstance(body[0], list):
        for i, child in enumerate(_children(body), 1):
            yield from _walk_part(child, prefix + (i,))
    else:
        yield from _walk_part(body, prefix + (1,))


def _walk_part(body, number):
    if isinstance(body[0], list):  # a multipart has no size of its own
        yield number, None
        for i, child in enumerate(_children(body), 1):
            yield from _walk_part(child, number + (i,))
        return
    yield number, body[6]
    if body[0].lower() == b"message" and body[1].lower() == b"rfc822":
        yield from walk_body(body[8], number)


def _check_structure(m: Message, seen: list[int]) -> list[str]:
    problems = []
    for extended in (False, True):
        tree = parse_wire(m.bodystructure(extended))
        for number, size in walk_body(tree):
            seen[0] += extended
            data = m.section(number, None)
            if data is None:
                problems.append("BODY[%s] missing" % ".".join(map(str, number)))
            elif size is not None and len(data) != size:
                problems.append("BODY[%s] is %d bytes, BODYSTRUCTURE says %d"
                                % (".".join(map(str, number)), len(data), size))
    return problems


def _unfold(value: bytes) -> bytes:
    return value.replace(b"\r", b"").replace(b"\n", b"").strip(b" \t")


def _python_fields(m: Message):
    """The header as Python's compat32 parser sees it, or None when it
    stops early (a line it cannot read as a header ends its header)."""
    msg = email.parser.BytesHeaderParser(policy=policy.compat32).parsebytes(m.header_bytes())
    if any(isinstance(d, (email.errors.MissingHeaderBodySeparatorDefect,
                          email.errors.MisplacedEnvelopeHeaderDefect))
           for d in msg.defects):
        return None
    fields: dict[str, bytes] = {}
    for name, value in msg._headers:
        raw = value.encode("ascii", "surrogateescape") if isinstance(value, str) else bytes(value)
        fields.setdefault(name.lower(), _unfold(raw))
    return fields


def _check_envelope(m: Message) -> tuple[list[str], bool]:
    fields = _python_fields(m)
    env = parse_wire(m.envelope())
    if fields is None:
        return [], False
    problems = []
    if env[1] != fields.get("subject"):
        problems.append("subject %r != %r" % (env[1], fields.get("subject")))
    if env[9] != fields.get("message-id"):
        problems.append("message-id %r != %r" % (env[9], fields.get("message-id")))
    # From: compare the addr-specs where Python finds well-formed ones.
    value = fields.get("from")
    ours = [b"%s@%s" % (a[2], a[3]) for a in (env[2] or []) if a[3] is not None]
    if value is None:
        if env[2] is not None:
            problems.append("from present without a From field")
    else:
        theirs = [a for _, a in email.utils.getaddresses(
            [value.decode("ascii", "surrogateescape")]) if a]
        # Python splits "a@b <a@b>" into two addresses and reads
        # "x@y@z" as "@z"; only well-formed results are a reference.
        if theirs and len(theirs) <= value.count(b",") + 1 and all(
                a.count("@") == 1 and " " not in a and not a.startswith("@")
                and not a.endswith("@") for a in theirs):
            theirs_b = [a.encode("ascii", "surrogateescape") for a in theirs]
            if ours != theirs_b:
                problems.append("from %r != %r" % (ours, theirs_b))
    return problems, True


def _run(messages, deep: bool):
    failures = []
    compared = skipped = count = 0
    parts = [0]
    for path, raw in messages:
        count += 1
        try:
            m = Message(raw)
            problems = []
            if m.header_bytes() + m.text_bytes() != raw:
                problems.append("header + text != message")
            m.sent_date()
            m.decoded_header("subject")
            m.decoded_header("from")
            for _ in m.decoded_text():
                pass
            problems += _check_structure(m, parts)
            if deep:
                env_problems, done = _check_envelope(m)
                problems += env_problems
                compared += done
                skipped += not done
        except Exception as e:  # the point of the test: report, don't stop
            problems = ["raised %r" % (e,)]
        if problems:
            failures.append((path, problems))
    _run.parts = parts[0]
    return count, compared, skipped, failures


def test_spamassassin():
    """
    All 6,046 SpamAssassin messages: no exception, header+text == message,
    BODY[part] sizes match BODYSTRUCTURE, and ENVELOPE agrees with the
    email package.
    """
    count, compared, skipped, failures = _run(_maildir_messages("spamassassin"), True)
    assert count == 6046
    assert failures == [], "%d failures, first: %r" % (len(failures), failures[:5])
    # Python gives up on a few headers with non-header lines; the envelope
    # comparison must still cover nearly all of the corpus.
    assert compared > 5900, (compared, skipped)
    # 504 multiparts (README): their parts must really be found, not
    # replaced by the empty part a multipart without delimiters gets.
    assert _run.parts > 6500, _run.parts


@pytest.mark.parametrize("name", ["mail-gem", "notmuch"])
def test_other_maildirs(name):
    """The mail-gem and notmuch corpora: no exception, consistent sizes."""
    count, _, _, failures = _run(_maildir_messages(name), False)
    assert count > 0
    assert failures == [], failures[:5]


@pytest.mark.parametrize("name", ["usrp-users/usrp-users.mbox", "linux-erofs/linux-erofs.mbox"])
def test_mbox_corpora(name):
    """The two mbox corpora: no exception, consistent sizes."""
    path = os.path.join(CORPUS, name)
    box = mailbox.mbox(path, create=False)
    messages = ((key, _crlf(box.get_bytes(key))) for key in box.keys())
    count, _, _, failures = _run(messages, False)
    assert count > 100
    assert failures == [], failures[:5]
