# -*- test-case-name: tests.storage.migrate.test_migrate -*-
"""
Placing messages in a Maildir under UIDs they already have: the write path
of a migration from another store (L{storage.migrate}), beside
L{storage.maildir.save}, which always gives the next UIDs.

What keeps it safe (DESIGN.md rule 1; RFC 3501 section 2.3.1.1: UIDs
ascend and a UID is never given twice in one UIDVALIDITY):

 - the Maildir takes the given UIDVALIDITY only while it holds no message
   and no uidlist line (a mailbox nobody can have seen mail in);
   otherwise the two must agree, or nothing is written;
 - a UID is placed only at or above the uidlist's next UID: never one the
   Maildir gave itself, showed, or saw expunged.  UIDs listed already are
   left alone (the caller compares them, L{storage.migrate});
 - everything happens under the uidlist dotlock, the lock every UID giver
   takes (L{storage.maildir.sync.update_uidlist}), so nobody numbers the
   new files in between;
 - the files go to C{cur/} first, made durable together (one C{syncfs}
   per batch: their data and their renames, cheaper than an C{fsync} per
   file, which leaves the renames to chance), the uidlist lines after
   them.  A run
   killed in between leaves files without lines; their names are made from
   the UIDVALIDITY and the UID they are meant for (L{restored_base}), so the
   next run finds them and lists them under that UID instead of writing
   them a second time.  (The other order would leave lines without files,
   which a sync drops and the UID would then lie below the next UID.)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Iterable

from storage.errors import StoreError
from storage.maildir.content import crlf_size, to_lf
from storage.maildir.filename import INFO_SEP, MaildirName
from storage.maildir.files import atomic_write, locked, read_file
from storage.maildir.save import split_flags
from storage.maildir.sync import new_uidlist, scan
from storage.maildir.uidlist import UidlistRecord

__all__ = ["Restored", "RestoreResult", "restore", "restored_base"]

#: The host part of restored names: fixed, not the host name, so that a
#: run resumed on another node recognises the files of the killed one.
_HOST = "migrated"


@dataclass(frozen=True, slots=True)
class Restored:
    """
    One message to place.

    @ivar data: the message as clients see it (CRLF or LF line ends).
    """

    uid: int
    flags: frozenset[str]
    internaldate: datetime
    data: bytes


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """
    @ivar placed: UIDs now listed that were not before.
    @ivar refused: UIDs below the Maildir's next UID and not in it (expunged
        there): never given again.
    """

    uidvalidity: int
    placed: tuple[int, ...] = ()
    refused: tuple[int, ...] = ()


def restored_base(uidvalidity: int, uid: int, internaldate: datetime, body: bytes) -> str:
    """
    The base name of a restored message: the Maildir convention (time,
    unique part, host) with the time of its INTERNALDATE and a unique part
    made of the UIDVALIDITY and UID, which no other writer produces
    (theirs start with C{M} or C{P}), with Dovecot's size fields.
    """
    secs = max(0, int(internaldate.timestamp()))
    return f"{secs}.V{uidvalidity}U{uid}.{_HOST},S={len(body)},W={crlf_size(body)}"


def restore(mailbox, uidvalidity: int, uidnext: int, messages: Iterable[Restored],
            modseq_log: bytes | None = None) -> RestoreResult:
    """
    Place C{messages} (ascending UIDs) in the Maildir of C{mailbox} (a
    writable L{storage.maildir.mailbox.MaildirMailbox}) under their UIDs,
    and raise its next UID to C{uidnext}.

    @param modseq_log: the content of the source's modseq log
        (L{storage.modseq}), installed when the Maildir is still empty: the
        MODSEQs clients were given stay valid.
    @raises StoreError: the Maildir has mail under another UIDVALIDITY, or
        a file or the uidlist cannot be written (what was written before
        stays consistent; see the module docstring).
    """
    messages = sorted(messages, key=lambda m: m.uid)
    directory = mailbox.directory
    # Keyword letters first, outside the uidlist lock, as a commit does
    # (the two dotlocks are never held together).
    names: set[str] = set()
    for m in messages:
        names |= split_flags(m.flags)[1]
    mailbox.keywords.letters_for(names)
    uidfile = mailbox.uidlist_file
    with locked(uidfile.path):
        found = uidlist = uidfile.read_locked()
        entries = scan(directory, flush=mailbox.nfs)
        fresh = uidlist is None or (not uidlist.records and not entries)
        if fresh and (uidlist is None or uidlist.uidvalidity != uidvalidity):
            base_list = uidlist or new_uidlist(uidvalidity)
            uidlist = replace(base_list, uidvalidity=uidvalidity, nextuid=1, records=())
        if fresh and modseq_log is not None and read_file(mailbox.modseqs.path) != modseq_log:
            atomic_write(mailbox.modseqs.path, modseq_log, fsync=mailbox.fsync)
        elif uidlist is None or uidlist.uidvalidity != uidvalidity:
            have = "no uidlist" if uidlist is None else f"UIDVALIDITY {uidlist.uidvalidity}"
            raise StoreError(
                f"{directory} holds mail under {have}, not {uidvalidity}: it is not a copy "
                f"of this source; nothing was written")
        listed = {r.uid for r in uidlist.records}
        floor = uidlist.next_uid
        added: list[UidlistRecord] = []
        refused: list[int] = []
        written: list[str] = []
        for m in messages:
            if m.uid in listed:
                continue
            if m.uid < floor:
                refused.append(m.uid)
                continue
            added.append(UidlistRecord(m.uid, _place(mailbox, uidvalidity, m, entries, written)))
        if written and mailbox.fsync:
            # Every file on disk before a line names it (a line without its
            # file would be dropped by the next sync, its UID lost).
            _make_durable(directory, written)
        new = uidlist.with_records(uidlist.records + tuple(added))
        new = replace(new, nextuid=max(new.next_uid, uidnext))
        if new != found:
            uidfile.write(new, tuple(added))
    return RestoreResult(uidvalidity, tuple(r.uid for r in added), tuple(refused))


def _place(mailbox, uidvalidity: int, m: Restored, entries, written: list[str]) -> str:
    """
    Write C{m} into C{cur/} (unless a killed run did), add its path to
    C{written} (not yet flushed: L{_make_durable}) and return its base.
    """
    directory = mailbox.directory
    body = to_lf(m.data)
    base = restored_base(uidvalidity, m.uid, m.internaldate, body)
    if base in entries:
        # Written by a run killed before its uidlist write: flushed with
        # this batch's files (the kill may have come before its flush).
        written.append(entries[base].path(directory))
        return base
    letters, keywords = split_flags(m.flags)
    letters += mailbox.keywords.letters_for(keywords)
    name = MaildirName(base, None, "", "").with_letters(letters) if letters else (
        f"{base}{INFO_SEP}2,")
    tmp = os.path.join(directory, "tmp", base)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        # INTERNALDATE is the file's mtime (Dovecot's convention).
        ts = m.internaldate.timestamp()
        os.utime(tmp, (ts, ts))
        os.rename(tmp, os.path.join(directory, "cur", name))
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(f"cannot write {tmp}: {e.strerror or e}") from e
    written.append(os.path.join(directory, "cur", name))
    return base


def _make_durable(directory: str, paths: list[str]) -> None:
    """
    Flush the files at C{paths} and their renames into C{directory}/cur:
    one C{syncfs(2)} of the file system where the platform has it, else
    an C{fsync} of each file and of C{cur/}.
    """
    fd = os.open(os.path.join(directory, "cur"), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _syncfs is not None and _syncfs(fd) == 0:
            return
        for path in paths:
            file_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(file_fd)
            finally:
                os.close(file_fd)
        os.fsync(fd)
    except OSError as e:
        raise StoreError(f"cannot flush {directory}/cur: {e.strerror or e}") from e
    finally:
        os.close(fd)


def _libc_syncfs():
    """C{syncfs(2)} from the C library (Linux), or C{None}."""
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _libc_syncfs()
