"""
What the differential harness does to a reply before comparing it with the
other server's: it removes only what RFC 3501 and its extensions leave to
the server, and each rule below says why it is free.

The result of L{normalize} is a list of text lines: the EXPUNGE lines in
the order sent (their order changes the meaning of later sequence
numbers), then every other untagged line sorted (RFC 3501 section 7: the
server may send untagged data in any order and unsolicited; the order of
SELECT's data is nowhere fixed), then the tagged status line.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

__all__ = ["tokens", "normalize", "render"]


class Literal(bytes):
    """A literal string as read, kept apart from an atom of the same bytes."""


def tokens(data: bytes, pos: int = 0, depth: int = 0):
    """
    Parse C{data} from C{pos} into a list of atoms (bytes), quoted strings
    and literals (L{Literal}) and nested lists; returns (list, end).
    An atom keeps C{[...]} sections whole (C{BODY[HEADER.FIELDS (A B)]<0>}).
    """
    out = []
    n = len(data)
    while pos < n:
        c = data[pos:pos + 1]
        if c == b" ":
            pos += 1
        elif c == b"(":
            inner, pos = tokens(data, pos + 1, depth + 1)
            out.append(inner)
        elif c == b")":
            return out, pos + 1
        elif c == b'"':
            pos += 1
            s = b""
            while pos < n and data[pos:pos + 1] != b'"':
                if data[pos:pos + 1] == b"\\":
                    pos += 1
                s += data[pos:pos + 1]
                pos += 1
            out.append(Literal(s))
            pos += 1
        elif re.match(rb"~?\{\d+\+?\}\r\n", data[pos:pos + 24]):
            # RFC 3516 section 4.3: a BINARY[] answer may be a literal8
            # (~{n}) or any string; the bytes are what counts.
            m = re.match(rb"~?\{(\d+)\+?\}\r\n", data[pos:])
            start = pos + m.end()
            size = int(m.group(1))
            out.append(Literal(data[start:start + size]))
            pos = start + size
        else:
            start = pos
            while pos < n and data[pos:pos + 1] not in (b" ", b"(", b")"):
                if data[pos:pos + 1] == b"[":
                    close = data.find(b"]", pos)
                    pos = n if close < 0 else close + 1
                else:
                    pos += 1
            out.append(data[start:pos])
    return out, pos


def render(value) -> str:
    """Tokens back to text (strings always quoted, so literal vs quoted is free)."""
    if isinstance(value, list):
        return "(" + " ".join(render(v) for v in value) + ")"
    if isinstance(value, Literal):
        # RFC 3501 section 4.3: a string is a literal or a quoted string,
        # the server's choice; compare the bytes only.
        return '"' + value.decode("utf-8", "backslashreplace").replace('"', '\\"') + '"'
    return value.decode("utf-8", "backslashreplace")


def _sorted_flags(value) -> list:
    # RFC 3501 section 7.2.6 / 7.4.2: a flag list is a set; its order is free.
    return sorted(value, key=lambda v: bytes(v).lower()) if isinstance(value, list) else value


#: Response codes whose numeric values belong to one server's store.
_CODE_VALUES = {
    # RFC 3501 section 2.3.1.1: each server picks its UIDVALIDITY.
    "UIDVALIDITY": lambda args: ["<uidvalidity>"],
    # RFC 4315 section 3: the first value is the UIDVALIDITY.
    "APPENDUID": lambda args: ["<uidvalidity>"] + args[1:],
    "COPYUID": lambda args: ["<uidvalidity>"] + args[1:],
    # RFC 7162 section 3.1.1: MODSEQ values are the server's own
    # (Dovecot counts changes per mailbox differently); only "there is
    # one" is comparable.
    "HIGHESTMODSEQ": lambda args: ["<modseq>"],
}


def _code(text: bytes) -> tuple[str, bytes]:
    """C{[CODE args] rest} -> (normalized code text, rest)."""
    if not text.startswith(b"["):
        return "", text
    close = text.find(b"]")
    body = text[1:close]
    name, _, args = body.partition(b" ")
    name = name.decode().upper()
    if name == "CAPABILITY":
        # Capability lists differ by design (each server's extensions).
        return "[CAPABILITY]", text[close + 1:]
    if name == "PERMANENTFLAGS":
        parsed, _ = tokens(args)
        return f"[PERMANENTFLAGS {render(_sorted_flags(parsed[0]))}]", text[close + 1:]
    parts = args.decode("utf-8", "replace").split() if args else []
    if name in _CODE_VALUES and parts:
        parts = _CODE_VALUES[name](parts)
    return "[" + " ".join([name] + parts) + "]", text[close + 1:]


def _status_line(kind: str, rest: bytes) -> str:
    # RFC 3501 section 7.1: the text after the response code is human
    # readable and free.
    code, _ = _code(rest.lstrip())
    return f"{kind} {code}".rstrip()


def _is_now(value: bytes) -> bool:
    try:
        when = datetime.strptime(value.decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return False
    return abs((datetime.now(timezone.utc) - when).total_seconds()) < 86400


#: RFC 5258 section 3 (and RFC 9051 section 7.3.1): a returned attribute
#: implies another; whether the implied one is sent as well is free.
_IMPLIED = {b"\\NOINFERIORS": b"\\HasNoChildren", b"\\NONEXISTENT": b"\\Noselect"}


def _with_implied(attrs: list) -> list:
    have = {bytes(a).upper() for a in attrs}
    extra = [v for k, v in _IMPLIED.items() if k in have and v.upper() not in have]
    return attrs + extra


def _fetch_items(items: list) -> dict[str, str]:
    out = {}
    for i in range(0, len(items) - 1, 2):
        name = render(items[i]).upper()
        value = items[i + 1]
        if name == "FLAGS":
            value = _sorted_flags(value)
        elif name == "MODSEQ":
            value = [b"<modseq>"]
        elif name == "INTERNALDATE":
            # RFC 3501 section 9: date-day-fixed = (SP DIGIT) / 2DIGIT, so
            # " 7-Dec-2026" and "07-Dec-2026" are the same date.
            value = Literal(re.sub(rb"^[ 0](\d-)", rb"\1", bytes(value)))
            if _is_now(value):
                # RFC 3501 section 6.3.11: APPEND without a date-time
                # stamps the current time, which differs between the two
                # servers' runs.  Every scripted APPEND that gives a date
                # gives one far from today, so those stay compared.
                value = b"<time of APPEND>"
        out[name] = render(value)
    return out


def _untagged(line: bytes, fetches: dict[int, dict]) -> str | None:
    body = line[2:]
    head, _, rest = body.partition(b" ")
    word = head.upper()
    if word in (b"OK", b"NO", b"BAD", b"BYE", b"PREAUTH"):
        return "* " + _status_line(word.decode(), rest)
    if word == b"CAPABILITY":
        return "* CAPABILITY"
    if word == b"ID":
        # RFC 2971 section 3.2: the server's own name, version, etc.
        return "* ID"
    if word in (b"FLAGS",):
        parsed, _ = tokens(rest)
        return "* FLAGS " + render(_sorted_flags(parsed[0]))
    if word in (b"LIST", b"LSUB"):
        parsed, _ = tokens(rest)
        # RFC 3501 section 7.2.2: name attributes are a set.
        parsed[0] = _sorted_flags(_with_implied(parsed[0]))
        return f"* {word.decode()} " + " ".join(render(p) for p in parsed)
    if word == b"STATUS":
        parsed, _ = tokens(rest)
        items = parsed[-1]
        pairs = []
        for i in range(0, len(items) - 1, 2):
            k, v = render(items[i]).upper(), render(items[i + 1])
            if k == "UIDVALIDITY":
                v = "<uidvalidity>"
            elif k == "HIGHESTMODSEQ":
                v = "<modseq>"
            pairs.append(f"{k} {v}")
        # RFC 3501 section 7.2.4: the items may come in any order.
        return "* STATUS " + " ".join(render(p) for p in parsed[:-1]) + " (" + " ".join(sorted(pairs)) + ")"
    if word in (b"SEARCH", b"ESEARCH", b"SORT"):
        text = body.decode("utf-8", "replace")
        # RFC 7162 section 3.1.5/3.1.6: the MODSEQ value is the server's.
        text = re.sub(r"\(MODSEQ \d+\)", "(MODSEQ <modseq>)", text)
        text = re.sub(r" MODSEQ \d+", " MODSEQ <modseq>", text)
        return "* " + text
    if head.isdigit():
        kind, _, items = rest.partition(b" ")
        if kind.upper() == b"FETCH":
            parsed, _ = tokens(items)
            # RFC 3501 section 7.4.2: data items may come in any order and
            # may be split over several FETCH responses; merge per message.
            fetches.setdefault(int(head), {}).update(_fetch_items(parsed[0]))
            return None
        return f"* {int(head)} {kind.upper().decode()}"
    return "* " + body.decode("utf-8", "replace")


def _final_numbers(lines: list[tuple[str, int | None, str]]) -> list[str]:
    """
    Rewrite the message number of every FETCH line to what it is after
    the reply's EXPUNGE lines that follow it (RFC 3501 section 7.4.1: each
    EXPUNGE decrements the numbers above it), so that a FETCH sent before
    or after an EXPUNGE compares equal.  A FETCH of a message expunged
    later in the same reply keeps the mark "(expunged)".
    """
    out = []
    for i, (kind, msn, text) in enumerate(lines):
        if kind == "fetch":
            for later_kind, gone, _ in lines[i + 1:]:
                if later_kind == "expunge" and msn is not None:
                    if gone == msn:
                        msn = None
                    elif gone < msn:
                        msn -= 1
            out.append(f"* {msn if msn is not None else '(expunged)'} FETCH {text}")
    return out


def normalize(untagged: list[bytes], tagged: bytes | None, extra: list[str] = ()) -> list[str]:
    """A reply as comparable lines (see the module docstring)."""
    expunges, others, fetches, order = [], [], {}, []
    for line in untagged:
        if line.startswith(b"+"):
            continue  # a continuation request (IDLE): its text is free
        if not line.startswith(b"* "):
            others.append("?? " + line.decode("utf-8", "replace"))
            continue
        head = line[2:].split(b" ", 1)[0]
        known = head.isdigit() and int(head) in fetches
        text = _untagged(line, fetches)
        if text is None:
            if not known:
                order.append(("fetch", int(head), None))
            continue
        if text.endswith(" EXPUNGE"):
            expunges.append(text)
            order.append(("expunge", int(text.split()[1]), text))
        else:
            others.append(text)
    lines = [(kind, msn, "(" + " ".join(f"{k} {v}" for k, v in sorted(fetches[msn].items())) + ")"
              if kind == "fetch" else text) for kind, msn, text in order]
    out = expunges + sorted(others + _final_numbers(lines))
    if tagged is not None:
        _tag, _, rest = tagged.partition(b" ")
        status, _, rest = rest.partition(b" ")
        out.append(_status_line(status.upper().decode(), rest))
    return out
