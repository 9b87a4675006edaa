# -*- test-case-name: tests.storage.mbox.test_mbox_layout -*-
"""
Mailbox names to files (Dovecot's C{fs} layout, also UW-IMAP's and
pine's): every mailbox is a file under the mail root, hierarchy levels are
directories, each level in modified UTF-7 (C{Ünïcode} is
C{&ANw-n&AO8-code}).  A directory without a file of the same name is a
C{\\Noselect} parent.  INBOX is the C{INBOX=} file (by default C{inbox} in
the root, as Dovecot does).

Names must stay under the root: no empty, C{.} or C{..} levels, no level
starting with C{.} (the root's control files, C{.subscriptions},
C{.imap/}, our temporary files, live there), none ending in C{.lock}
(dotlocks), no leading C{/} or C{~}, no NUL or control characters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from storage import mutf7
from storage.errors import InvalidMailboxName

__all__ = ["SEP", "INBOX", "MboxLayout", "normalize"]

SEP = "/"
INBOX = "INBOX"
_NAME_MAX = 255


def normalize(name: str) -> str:
    """
    Check a mailbox name; return it with a first level C{inbox} in any case
    spelled C{INBOX}.

    @raises InvalidMailboxName: the name is not acceptable (the message
        says why).
    """
    if not isinstance(name, str) or name == "":
        raise InvalidMailboxName("the mailbox name is empty")
    if name.startswith(SEP) or name.startswith("~"):
        raise InvalidMailboxName(f"mailbox name {name!r} starts with {name[0]!r}")
    for ch in name:
        o = ord(ch)
        if o < 0x20 or o == 0x7F or 0x80 <= o < 0xA0:
            raise InvalidMailboxName(
                f"mailbox name {name!r} holds a control character (U+{o:04X})")
        if 0xD800 <= o <= 0xDFFF:
            raise InvalidMailboxName(f"mailbox name {name!r} is not valid Unicode")
    parts = name.split(SEP)
    for part in parts:
        if part == "":
            raise InvalidMailboxName(f"mailbox name {name!r} has an empty hierarchy level")
        if part.startswith("."):
            raise InvalidMailboxName(
                f"mailbox name {name!r} has a level starting with '.', which is kept "
                f"for control files and parent references")
        if part.lower().endswith(".lock"):
            raise InvalidMailboxName(f"mailbox name {name!r} ends like a lock file")
        if "\\" in part:
            raise InvalidMailboxName(f"mailbox name {name!r} contains a backslash")
    if parts[0].upper() == INBOX:
        parts[0] = INBOX
    return SEP.join(parts)


@dataclass(frozen=True)
class MboxLayout:
    """Names to paths and back, under one mail root."""

    root: str
    inbox: str

    def path(self, name: str) -> str:
        """
        The file (or directory) of an already normalized name.

        @raises InvalidMailboxName: it would fall outside the root, even
            through a symbolic link, or a level is too long.
        """
        if name == INBOX:
            return self.inbox
        levels = [mutf7.encode(p) for p in name.split(SEP)]
        for level in levels:
            if len(os.fsencode(level)) > _NAME_MAX:
                raise InvalidMailboxName(f"mailbox name {name!r} is too long")
        path = os.path.join(self.root, *levels)
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if not real.startswith(real_root + os.sep):
            raise InvalidMailboxName(f"mailbox name {name!r} resolves outside the mail root")
        return path

    def _skip(self, entry: str, path: str) -> bool:
        return (entry.startswith(".") or entry.lower().endswith(".lock")
                or os.path.abspath(path) == os.path.abspath(self.inbox))

    def scan(self) -> dict[str, bool]:
        """Every name under the root: C{name -> selectable} (INBOX excluded)."""
        result: dict[str, bool] = {}

        def walk(directory: str, prefix: list[str], depth: int) -> None:
            if depth > 32:
                return
            try:
                entries = os.listdir(directory)
            except OSError:
                return
            for entry in entries:
                path = os.path.join(directory, entry)
                if self._skip(entry, path):
                    continue
                try:
                    level = mutf7.decode(entry)
                except ValueError:
                    level = entry
                parts = prefix + [level]
                try:
                    name = normalize(SEP.join(parts))
                except InvalidMailboxName:
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    result.setdefault(name, name == INBOX)
                    walk(path, parts, depth + 1)
                elif os.path.isfile(path):
                    if name != INBOX:
                        result[name] = True
        walk(self.root, [], 0)
        result.pop(INBOX, None)
        return result
