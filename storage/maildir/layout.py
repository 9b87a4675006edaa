# -*- test-case-name: tests.storage.maildir.test_maildir_layout -*-
"""
The Maildir++ layout (Dovecot's C{mailbox-list-maildir.c}): INBOX is the
root Maildir, every other mailbox is a sibling directory of the root's
C{cur/new/tmp} named C{.} + its name with C{.} between hierarchy levels,
each level in modified UTF-7: C{Archive/2024} is C{.Archive.2024},
C{Ünïcode} is C{.&ANw-n&AO8-code}.  A folder holds a C{maildirfolder}
marker file (for MDAs that check it before writing maildirsize).

Because C{.} separates levels on disk, a C{.} inside a name cannot be
represented: such names are refused.  Names must also stay under the mail
root: no empty, C{.} or C{..} levels, no leading C{/} or C{~}, no NUL or
control characters (they would end up in file names and log lines).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from storage import mutf7
from storage.errors import InvalidMailboxName

__all__ = ["SEP", "SUBDIRS", "FOLDER_MARKER", "INBOX", "MaildirLayout", "normalize"]

#: Hierarchy delimiter at the storage seam (storage.interfaces).
SEP = "/"
SUBDIRS = ("cur", "new", "tmp")
FOLDER_MARKER = "maildirfolder"
INBOX = "INBOX"
# NAME_MAX on Linux and most NFS servers.
_NAME_MAX = 255


def normalize(name: str) -> str:
    """
    Check a mailbox name and return its canonical spelling: a first level
    spelled C{inbox} in any case becomes C{INBOX} (RFC 3501 section 5.1).

    @raises InvalidMailboxName: the name is not acceptable; the message
        says why.
    """
    if not isinstance(name, str) or name == "":
        raise InvalidMailboxName("the mailbox name is empty")
    if name.startswith(SEP):
        raise InvalidMailboxName(f"mailbox name {name!r} starts with {SEP!r}")
    if name.startswith("~"):
        raise InvalidMailboxName(f"mailbox name {name!r} starts with '~'")
    for ch in name:
        if ord(ch) < 0x20 or ord(ch) == 0x7F or 0x80 <= ord(ch) < 0xA0:
            raise InvalidMailboxName(
                f"mailbox name {name!r} holds a control character (U+{ord(ch):04X})"
            )
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise InvalidMailboxName(f"mailbox name {name!r} is not valid Unicode")
    parts = name.split(SEP)
    for part in parts:
        if part == "":
            raise InvalidMailboxName(f"mailbox name {name!r} has an empty hierarchy level")
        if part in (".", ".."):
            raise InvalidMailboxName(f"mailbox name {name!r} has a {part!r} level")
        if "." in part:
            raise InvalidMailboxName(
                f"mailbox name {name!r} contains '.', which the Maildir++ layout "
                f"uses as its hierarchy separator on disk; use {SEP!r} instead"
            )
    if parts[0].upper() == INBOX:
        parts[0] = INBOX
    return SEP.join(parts)


@dataclass(frozen=True)
class MaildirLayout:
    """
    Names to directories and back, under one mail root.

    @ivar root: the root Maildir (INBOX unless C{inbox} is set).
    @ivar inbox: the INBOX Maildir, when it lives elsewhere
        (C{mail_location}'s C{INBOX=}).
    """

    root: str
    inbox: str | None = None

    def path(self, name: str) -> str:
        """
        The directory of an already normalized mailbox name.

        @raises InvalidMailboxName: the directory would fall outside the
            mail root, even through a symbolic link, or its name is too long.
        """
        if name == INBOX:
            return self.inbox or self.root
        dirname = "." + ".".join(mutf7.encode(p) for p in name.split(SEP))
        if len(os.fsencode(dirname)) > _NAME_MAX:
            raise InvalidMailboxName(f"mailbox name {name!r} is too long")
        path = os.path.join(self.root, dirname)
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if os.path.dirname(real) != real_root:
            raise InvalidMailboxName(f"mailbox name {name!r} resolves outside the mail root")
        return path

    @staticmethod
    def name_of(dirname: str) -> str | None:
        """
        The mailbox name of a root entry such as C{.Archive.2024}, or
        C{None} if the entry is not a mailbox directory (C{.}, C{..},
        C{..deleted...}, names that are not valid modified UTF-7).
        """
        if not dirname.startswith(".") or dirname in (".", ".."):
            return None
        parts = dirname[1:].split(".")
        try:
            decoded = [mutf7.decode(p) for p in parts]
        except ValueError:
            return None
        if any(p == "" or SEP in p for p in decoded):
            return None
        name = SEP.join(decoded)
        try:
            return normalize(name)
        except InvalidMailboxName:
            return None

    def scan(self) -> dict[str, bool]:
        """
        Every mailbox directory under the root: C{name -> selectable}
        (a directory with C{cur/} is selectable, one without is a
        C{\\Noselect} parent left by DELETE).  INBOX is not included.
        """
        result: dict[str, bool] = {}
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            return result
        for entry in entries:
            name = self.name_of(entry)
            if name is None or name == INBOX:
                continue
            path = os.path.join(self.root, entry)
            if not os.path.isdir(path):
                continue
            result[name] = os.path.isdir(os.path.join(path, "cur"))
        return result
