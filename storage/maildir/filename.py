# -*- test-case-name: tests.storage.maildir.test_maildir_filename -*-
"""
Maildir file names: C{<base>[:<info>]}.

The base (the "unique part") identifies the message for its whole life and
never changes (DESIGN.md rule 5); it may carry Dovecot's size fields
(C{,S=<file size>}, C{,W=<CRLF size>}) and other programs' fields (UW's
C{,U=...}), which we parse where we understand them and otherwise keep
byte for byte.  The info part C{2,<letters>} holds the flags: uppercase
letters are the Maildir flags (D F P R S T, ...), lowercase letters index
into C{dovecot-keywords}.  We never derive UIDs or order from names:
procmail's names are not time-sorted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "INFO_SEP",
    "FLAG_LETTERS",
    "LETTER_FLAGS",
    "MaildirName",
    "split",
    "split_info",
    "size_field",
    "save_time",
]

#: The separator between the base and the info part (Dovecot's
#: C{MAILDIR_INFO_SEP}).
INFO_SEP = ":"

#: IMAP system flag -> Maildir flag letter (the Maildir spec; Dovecot's
#: C{maildir-filename-flags.c}).  "P" (passed) has no IMAP flag; it and any
#: other uppercase letter are kept untouched on rewrite.
FLAG_LETTERS = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
LETTER_FLAGS = {v: k for k, v in FLAG_LETTERS.items()}


def split(name: str) -> tuple[str, str | None]:
    """
    Split a file name into its base and info part.

    @return: C{(base, info)}, C{info} is C{None} when the name has no
        C{:} (typical of files in C{new/}).
    """
    base, sep, info = name.partition(INFO_SEP)
    return base, (info if sep else None)


def split_info(name: str) -> tuple[str, str | None, str, str]:
    """
    The parts of a file name: C{(base, info, letters, extra)}, as the
    fields of L{MaildirName} describe them.
    """
    base, sep, info = name.partition(INFO_SEP)
    if not sep:
        return base, None, "", ""
    if info.startswith("2,"):
        letters, comma, tail = info[2:].partition(",")
        return base, info, letters, comma + tail
    return base, info, "", ""


_SIZE_RE_CACHE: dict[str, re.Pattern[str]] = {}


def size_field(base: str, key: str) -> int | None:
    """
    The value of a C{,<key>=<digits>} field of a base name (C{"S"} is the
    file size, C{"W"} the size with CRLF line endings), or C{None}.
    """
    if f",{key}=" not in base:
        return None  # most names: no regular expression needed
    pattern = _SIZE_RE_CACHE.get(key)
    if pattern is None:
        pattern = _SIZE_RE_CACHE[key] = re.compile(r",%s=(\d+)(?=,|$)" % re.escape(key))
    m = pattern.search(base)
    return int(m.group(1)) if m else None


@dataclass(frozen=True, slots=True)
class MaildirName:
    """
    A parsed file name.

    @ivar base: the unique part, up to the first C{:}.
    @ivar info: the info part after C{:}, or C{None}.
    @ivar letters: the flag letters of a C{2,} info part, in file order.
    @ivar extra: anything after a second C{,} in a C{2,} info part, kept
        verbatim (C{""} when absent; includes its leading comma).
    """

    base: str
    info: str | None
    letters: str
    extra: str

    @classmethod
    def parse(cls, name: str) -> "MaildirName":
        """Parse a file name from C{new/} or C{cur/}."""
        return cls(*split_info(name))

    @property
    def has_flags(self) -> bool:
        """Whether the info part is a C{2,} flags part (or absent)."""
        return self.info is None or self.info.startswith("2,")

    def system_flags(self) -> frozenset[str]:
        """The IMAP system flags the uppercase letters stand for."""
        return frozenset(LETTER_FLAGS[c] for c in self.letters if c in LETTER_FLAGS)

    def keyword_letters(self) -> str:
        """The lowercase (keyword) letters."""
        return "".join(c for c in self.letters if "a" <= c <= "z")

    def unknown_letters(self) -> str:
        """
        Uppercase letters we do not map (C{P} and anything else): kept as
        they are when we rewrite the name.
        """
        return "".join(
            c for c in self.letters if not ("a" <= c <= "z") and c not in LETTER_FLAGS
        )

    def with_letters(self, letters: str) -> str:
        """
        The file name for the same base with a new set of flag letters.

        Letters are written once each, in ASCII order (the Maildir spec);
        a non-C{2,} info part (C{1,...} experimental semantics) is replaced
        because it cannot carry flags.
        """
        ordered = "".join(sorted(set(letters)))
        return f"{self.base}{INFO_SEP}2,{ordered}{self.extra}"

    def __str__(self) -> str:
        return self.base if self.info is None else f"{self.base}{INFO_SEP}{self.info}"


# The time a Maildir unique name starts with: seconds, a dot, and in the
# names Dovecot, qmail and we write ("<secs>.M<usecs>P<pid>..."), the
# microseconds.  Nine or more digits: a 1973-or-later time.
_SAVE_TIME = re.compile(r"(\d{9,11})\.(?:M(\d{1,6})(?=P))?")


def save_time(base: str):
    """
    The RFC 8514 save date of the message whose base name is C{base}, or
    C{None} when the name does not start with a time.

    The Maildir convention (followed by Dovecot, qmail, procmail,
    maildrop and our own L{storage.maildir.files.unique_name}) starts a
    unique name with the time the file was created, and a file is created
    in a folder when a message enters it: delivery, APPEND, and COPY or
    MOVE, which give the copy a new name (Dovecot does the same).  So the
    name carries the save date, as shared as the file itself: every node
    agrees, no index is needed, and it never changes (rule 5).  We never
    order or number messages by it (procmail's names are not sorted).
    """
    from datetime import datetime, timezone

    m = _SAVE_TIME.match(base)
    if m is None:
        return None
    seconds = int(m.group(1))
    micros = int(m.group(2)) if m.group(2) else 0
    try:
        return datetime.fromtimestamp(seconds + micros / 1_000_000, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
