"""
Small helpers shared by the two-session conversation tests of RFC 5267
(C{test_context_search}) and RFC 5465 (C{test_notify}).
"""

from __future__ import annotations

import re


class _Recent:
    """Equal to any "* n RECENT" line (the count depends on who saw the messages first)."""

    def __eq__(self, other):
        return isinstance(other, str) and re.fullmatch(r"\* \d+ RECENT", other) is not None

    def __repr__(self):
        return "'* n RECENT'"


#: Stands for a "* n RECENT" line in a list of expected lines.
RECENT = _Recent()


def msg(n: int, subject: str | None = None) -> bytes:
    """Message n, dated day n of January 2024."""
    subject = subject or f"message {n}"
    return (f"From: a{n}@example.org\r\nTo: b@example.org\r\nSubject: {subject}\r\n"
            f"Date: Mon, {n} Jan 2024 10:00:00 +0000\r\n\r\nBody {n}.\r\n").encode()


def append(conv, tag: str, n: int, flags: str = "", subject: str | None = None,
           mailbox: str = "INBOX") -> None:
    """APPEND message n (LITERAL+) and assert it is OK."""
    data = msg(n, subject)
    conv.send(f"{tag} APPEND {mailbox} {flags}{{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    lines = conv.lines()
    assert lines[-1].startswith(f"{tag} OK"), lines


def second(new_conv, select: str | None = "INBOX"):
    """Another session of the same user, with C{select} selected (if any)."""
    other = new_conv()
    other.login()
    if select:
        other.ok(f"o0 SELECT {select}")
    return other
