# -*- test-case-name: tests.storage.maildir.test_maildir_repair -*-
"""
Repairing a damaged C{dovecot-uidlist} without renumbering (the Maildir
half of C{imapd-admin force-resync}).

A uidlist that L{storage.maildir.uidlist.Uidlist.parse} refuses (a line
of NUL bytes after a crash over NFS, a hand edit that swapped or
duplicated lines, a header whose C{V} or C{N} is garbled) makes the
mailbox unusable: opening it raises L{BrokenMailbox}, and deleting the
file would give every message a new UID under a new UIDVALIDITY, which
makes every client download the mailbox again.  DESIGN.md rule 1 says
nothing may renumber a UID because some file was lost, so the repair
keeps every UID that can still be read:

 - each line that still reads as C{<uid> [ext] :<name>} keeps its UID;
   a line that does not read is dropped and its file, if there is one,
   gets a new UID at the next sync (it cannot be told which UID it had);
 - a UID listed twice stays with its first line, a file listed twice
   keeps its first UID; the other line is dropped (the same rule);
 - UIDVALIDITY is the header's C{V}; if that is unreadable, the one the
   caller gives (the sysadmin's), else the mailbox's modseq log's
   (L{storage.modseq.ModseqLog.uids_given}), which lives beside the
   uidlist in the shared store; with none of them the repair refuses;
 - the next UID is the largest of C{N}, the last listed UID + 1 and the
   modseq log's highest UID + 1 (expunged UIDs stay given); with C{N}
   unreadable and no modseq log of this UIDVALIDITY, L{UNKNOWN_NEXT_GAP}
   UIDs after the last listed one are left unused.

The repaired file is written under the uidlist dotlock, like every
writer (L{storage.maildir.uidlist}); Dovecot reads it as it reads ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.base import UNKNOWN_NEXT_GAP
from storage.errors import BrokenMailbox, StoreError
from storage.maildir.files import locked
from storage.maildir.sync import new_uidlist
from storage.maildir.uidlist import Uidlist, UidlistRecord, _parse_record

__all__ = ["UidlistRepair", "read_leniently", "repair_uidlist"]


@dataclass(frozen=True)
class UidlistRepair:
    """
    What L{repair_uidlist} did.

    @ivar changed: the file was rewritten (C{False}: it was sound).
    @ivar problems: one line per thing found broken.
    """

    changed: bool
    uidvalidity: int
    next_uid: int
    kept: int
    problems: tuple[str, ...] = ()


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 2**32 else None


def read_leniently(data: bytes, path: str) -> tuple[Uidlist | None, int | None, list[str]]:
    """
    Whatever can still be read of a uidlist's bytes.

    @return: C{(uidlist, uidvalidity, problems)}: the uidlist has the
        readable lines (UIDs unique and ascending, each file once) and a
        C{uidvalidity} of 0 when the header's C{V} was unreadable, in
        which case the second value is C{None}, and a C{nextuid} of 0
        when its C{N} was.
    """
    text = data.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    problems: list[str] = []
    if lines and lines[-1] == "":
        lines.pop()
    elif len(lines) > 1:
        # As Uidlist.parse: a torn append's message never left tmp/.
        problems.append(f"line {len(lines)}: cut short (a torn append), dropped")
        lines.pop()
    if not lines:
        return None, None, ["empty file"]
    uidvalidity = nextuid = None
    guid, header_ext = "", []
    if " :" in lines[0] and _parse_record(lines[0], 3) is not None:
        # The header line itself is gone: the first line is a message's.
        problems.append("line 1: no header (the first line lists a message)")
        lines.insert(0, "")
    head = lines[0].replace("\0", " ").split()
    if not head:
        pass
    elif len(head) >= 3 and head[0] == "1":
        uidvalidity, nextuid = _number(head[1]), _number(head[2])
    else:
        if head[0] != "3":
            problems.append(f"line 1: header {lines[0][:40]!r} is not a version 3 header")
        for token in head[1:]:
            key, value = token[:1], token[1:]
            if key == "V":
                uidvalidity = _number(value)
            elif key == "N":
                nextuid = _number(value)
            elif key == "G" and value.isalnum():
                guid = value
            elif key.isalpha() and key.isupper():
                header_ext.append(token)
    if uidvalidity is None:
        problems.append("line 1: UIDVALIDITY (V) unreadable")
    if nextuid is None:
        problems.append("line 1: next UID (N) unreadable")
    records: dict[int, UidlistRecord] = {}
    owner: dict[str, int] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        record = _parse_record(line, 3) if "\0" not in line else None
        if record is None:
            problems.append(f"line {lineno}: unreadable, dropped: {line[:60]!r}")
        elif record.uid in records:
            problems.append(f"line {lineno}: UID {record.uid} listed again (for "
                            f"{record.base}), dropped")
        elif record.base in owner:
            problems.append(f"line {lineno}: {record.base} listed again (as UID "
                            f"{record.uid}; it keeps UID {owner[record.base]}), dropped")
        else:
            if records and record.uid < max(records):
                problems.append(f"line {lineno}: UID {record.uid} out of order, put back "
                                f"in place")
            records[record.uid] = record
            owner[record.base] = record.uid
    ordered = tuple(records[uid] for uid in sorted(records))
    uidlist = Uidlist(uidvalidity or 0, nextuid or 0, guid, tuple(header_ext), ordered)
    return uidlist, uidvalidity, problems


def repair_uidlist(mailbox, uidvalidity: int | None = None) -> UidlistRepair:
    """
    Rewrite the uidlist of the Maildir mailbox C{mailbox} (a
    L{storage.maildir.mailbox.MaildirMailbox}, not yet synced) with every
    UID it can still read, under the uidlist dotlock.  A sound file is
    left as it is.  Files the uidlist does not list get their UIDs at the
    next sync, as new mail does.

    @param uidvalidity: the sysadmin's UIDVALIDITY, used only when the
        header's is unreadable.
    @raises StoreError: the UIDVALIDITY cannot be told (see the module
        docstring); nothing was written.
    """
    uidfile = mailbox.uidlist_file
    with locked(uidfile.path):
        try:
            with open(uidfile.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = None
        if data is not None:
            try:
                sound = Uidlist.parse(data, uidfile.path)
            except BrokenMailbox:
                sound = None
            if sound is not None:
                return UidlistRepair(False, sound.uidvalidity, sound.next_uid,
                                     len(sound.records))
        witness = mailbox.modseqs.uids_given() if mailbox.modseqs is not None else None
        if data is None:
            if witness is None:
                # Nothing to keep: the next sync starts the mailbox, as for
                # a Maildir another program made.
                return UidlistRepair(False, 0, 1, 0, ("no uidlist (a new mailbox)",))
            uidlist, readable, problems = new_uidlist(0), None, ["the uidlist is missing"]
        else:
            uidlist, readable, problems = read_leniently(data, uidfile.path)
            if uidlist is None:
                uidlist = new_uidlist(0)
        chosen = readable or uidvalidity or (witness[0] if witness else None)
        if chosen is None:
            raise StoreError(
                f"{uidfile.path}: the UIDVALIDITY is unreadable and the mailbox has no "
                f"modseq log that remembers it; give the one clients know (--uidvalidity), "
                f"nothing was changed")
        if readable is None:
            source = "given" if uidvalidity else "from the modseq log"
            problems.append(f"UIDVALIDITY {chosen} {source}")
        next_uid = uidlist.next_uid
        if witness is not None and witness[0] == chosen:
            next_uid = max(next_uid, witness[1] + 1)
        elif data is not None and not uidlist.nextuid:
            next_uid += UNKNOWN_NEXT_GAP
            problems.append(f"the next UID is unknown: {next_uid}, leaving {UNKNOWN_NEXT_GAP} "
                            f"unused so that no expunged UID is given again")
        if data is None and witness is not None:
            problems.append(f"the UIDs of the messages are lost: they get new UIDs from "
                            f"{next_uid} under UIDVALIDITY {chosen}")
        repaired = Uidlist(chosen, next_uid, uidlist.guid or new_uidlist(0).guid,
                           uidlist.header_ext, uidlist.records)
        uidfile.write(repaired)
    return UidlistRepair(True, chosen, next_uid, len(repaired.records), tuple(problems))
