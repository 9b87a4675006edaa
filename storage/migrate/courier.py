# -*- test-case-name: tests.storage.migrate.test_migrate_maildirs -*-
"""
Courier-IMAP's state files in a Maildir (read only, for a migration):

 - C{courierimapuiddb}: the UIDs.  Its version 1 format is the one
   Dovecot's uidlist version 1 copied: a header C{1 <uidvalidity>
   <nextuid>}, then C{<uid> <base name>} lines (the base: the file name
   without C{:2,...}).
 - C{courierimapkeywords/}: the keywords.  C{:list} holds the keyword
   names one a line, an empty line, then C{<base name>:<n> <n> ...} lines
   whose numbers index the names; a file C{.<counter>.<base name>} holds
   the keyword names of one message, one a line, and is newer than
   C{:list} (the highest counter of a base wins).  Courier folds these
   into C{:list} from time to time.
 - C{courierimapsubscribed}: one subscribed folder a line,
   C{INBOX.Folder.Sub} (Maildir++ names, levels in modified UTF-7).
"""

from __future__ import annotations

import os

from storage import mutf7
from storage.errors import BrokenMailbox

__all__ = ["UIDDB_NAME", "KEYWORDS_DIR", "SUBSCRIBED_NAME", "parse_uiddb", "read_keywords",
           "parse_subscribed"]

UIDDB_NAME = "courierimapuiddb"
KEYWORDS_DIR = "courierimapkeywords"
SUBSCRIBED_NAME = "courierimapsubscribed"


def parse_uiddb(data: bytes, path: str = UIDDB_NAME) -> tuple[int, int, dict[str, int]]:
    """
    C{(uidvalidity, nextuid, base -> uid)} of a C{courierimapuiddb}.

    @raises BrokenMailbox: not a version 1 file, or a malformed line.
    """
    lines = data.decode("utf-8", "surrogateescape").split("\n")
    head = lines[0].split()
    if len(head) != 3 or head[0] != "1" or not head[1].isdigit() or not head[2].isdigit():
        raise BrokenMailbox(f"{path}: not a version 1 courierimapuiddb header: {lines[0]!r}")
    uids: dict[str, int] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        uid, sep, name = line.partition(" ")
        if not sep or not uid.isdigit() or int(uid) == 0 or not name:
            raise BrokenMailbox(f"{path}:{lineno}: bad line {line!r}")
        uids[name.partition(":")[0]] = int(uid)
    return int(head[1]), int(head[2]), uids


def read_keywords(directory: str) -> dict[str, frozenset[str]]:
    """The keywords of each base name in the Maildir C{directory}."""
    kwdir = os.path.join(directory, KEYWORDS_DIR)
    result: dict[str, frozenset[str]] = {}
    try:
        with open(os.path.join(kwdir, ":list"), "rb") as f:
            text = f.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        text = ""
    names, _, assignments = text.partition("\n\n")
    table = names.split("\n") if names else []
    for line in assignments.split("\n"):
        base, sep, numbers = line.rpartition(":")
        if not sep or not base:
            continue
        words = {table[int(n)] for n in numbers.split() if n.isdigit() and int(n) < len(table)}
        result[base] = frozenset(w for w in words if w)
    try:
        updates = os.listdir(kwdir)
    except FileNotFoundError:
        return result
    newest: dict[str, tuple[int, str]] = {}
    for entry in updates:
        # ".<counter>.<base>": the base itself contains dots.
        if not entry.startswith(".") or entry == ":list":
            continue
        counter, sep, base = entry[1:].partition(".")
        if not sep or not counter.isdigit() or not base:
            continue
        if base not in newest or int(counter) > newest[base][0]:
            newest[base] = (int(counter), entry)
    for base, (_, entry) in newest.items():
        try:
            with open(os.path.join(kwdir, entry), "rb") as f:
                words = f.read().decode("utf-8", "surrogateescape").split("\n")
        except FileNotFoundError:
            continue
        result[base] = frozenset(w.strip() for w in words if w.strip())
    return result


def parse_subscribed(data: bytes) -> list[str]:
    """Mailbox names (C{/}-separated) of a C{courierimapsubscribed} file."""
    names = []
    for line in data.decode("utf-8", "surrogateescape").split("\n"):
        line = line.strip()
        if not line:
            continue
        parts = line.split(".")
        if parts[0].upper() == "INBOX":
            parts = parts[1:] or ["INBOX"]
        try:
            names.append("/".join(mutf7.decode(p) for p in parts))
        except ValueError:
            continue  # not a name any client could have subscribed
    return names
