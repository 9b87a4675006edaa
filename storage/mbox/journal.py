# -*- test-case-name: tests.storage.mbox.test_mbox_crash -*-
"""
Recovery files for the writes that change an mbox in place (DESIGN.md
rule 4 where a rename is impossible).

A write that cannot be made atomic by write-temp-and-rename leaves a small
journal first, in a directory we can always write to (the store passes
C{<folder root>/.imapd-journal/}: a 0775 root:mail spool lets us write
C{/var/mail/USER} but not create anything beside it), one file per mailbox
and kind.  The journal is removed once the write is complete; whoever next
takes the mailbox's write lock and finds one (L{recover}) brings the file
back to a whole state before doing anything else.  Readers that cannot
repair hide what the journal says is torn (L{torn_append}).

Every write below keeps the end of the file at a position the journal
predicts, so that mail another program (an MDA that broke our stale
dotlock after we were killed) appended at the end is told apart from our
own bytes, and kept:

 - B{append} (journal: old and new size, SHA-256 and first bytes of what
   we append).  The file is first extended to its new size (C{ftruncate},
   atomic; the new bytes read as zeros), then written.  On recovery: file
   shorter than the new size, or the region not ours: the append never
   began, nothing to do.  Region hashes right: complete, kept.  Region is a
   prefix of our first bytes followed by zeros (its last byte is zero):
   torn; it is cut out (a truncation if nothing follows, else a rewrite of
   the tail, by rename or by the journaled overwrite below).
 - B{rewrite that shrinks} (or keeps the size; journal: the old bytes from
   the first changed byte to the old end, and the hash of the new ones).
   The new bytes are written over the old, then the file is truncated.  On
   recovery: new bytes all there and the file truncated, complete; new
   bytes there but the old remnant still follows, and nothing appended,
   finish the truncation; anything else is rolled back (the old bytes
   written back; what was appended after the old end stays where it is).
 - B{rewrite that grows} (journal: the new bytes from the first changed
   byte on).  The file is extended first, then written.  On recovery:
   extended by us (the extension holds a prefix of our bytes followed by
   zeros), roll forward by writing the new bytes again; else nothing was
   written.
 - a rewrite that only cuts the end is one C{ftruncate} and needs none.

The append journal is one small record (L{Journal.RECORD} octets)
written over the previous one in a file kept from append to append, made
durable with C{fdatasync} (the file's size does not change, so no
metadata has to reach the disk: one data block and a cache flush), and
cleared afterwards by overwriting it with zeros without a sync: a record
a crash leaves behind describes a complete append, which recovery tells
by its hash and keeps.  Creating, renaming and unlinking a journal file
per delivery cost three commits of the file system's own journal, more
than the delivery itself.

Recovery is idempotent: a crash during recovery leaves the journal, and
the next recovery reaches the same result.  A journal for another file
(the inode changed: another program replaced the mbox) is stale and only
removed, with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from typing import Callable
from urllib.parse import quote

from twisted.logger import Logger

__all__ = ["Journal", "recover", "torn_append", "append_bytes", "overwrite",
           "JOURNAL_DIR", "common_prefix"]

_log = Logger(namespace="storage.mbox")

#: The journal directory's name under the folder root (the layout never
#: lists dot files).
JOURNAL_DIR = ".imapd-journal"
_MAGIC = b"imapd-mbox-journal 1"
#: First bytes of an append kept in its journal, to recognise them.
_HEAD = 64


def _sha(data) -> str:
    return hashlib.sha256(data).hexdigest()


class Journal:
    """The journal files of one mbox: C{<directory>/<quoted key>.append|.rewrite}."""

    def __init__(self, directory: str, key: str) -> None:
        self.directory = directory
        base = quote(key, safe="")
        self.append_path = os.path.join(directory, base + ".append")
        self.rewrite_path = os.path.join(directory, base + ".rewrite")

    #: Size of an append record (header line and first bytes, then zeros):
    #: within one disk sector, so that it is written whole or not at all.
    RECORD = 512

    def pending(self) -> bool:
        """Whether a journal is present (a write of ours did not finish)."""
        return os.path.exists(self.rewrite_path) or self._append_recorded()

    def _append_recorded(self) -> bool:
        """Whether the append journal holds a record (a cleared one is all zeros)."""
        try:
            fd = os.open(self.append_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            return os.pread(fd, 1, 0) not in (b"", b"\0")
        finally:
            os.close(fd)

    def record_append(self, header: dict[str, object], payload: bytes, fsync: bool) -> None:
        """
        Write the append record over the previous one, durable before the
        caller touches the mbox (see the module docstring).
        """
        line = _MAGIC + b"".join(b" %s=%s" % (k.encode(), str(v).encode())
                                 for k, v in header.items()) + b"\n"
        record = line + payload
        if len(record) > self.RECORD:
            self._write(self.append_path, header, payload, fsync)
            return
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(self.append_path, flags, 0o600)
        except FileNotFoundError:
            # The directory first (once: not three calls per delivery).
            os.makedirs(self.directory, 0o700, exist_ok=True)
            fd = os.open(self.append_path, flags, 0o600)
        try:
            new = os.fstat(fd).st_size != self.RECORD
            _pwrite_all(fd, record + bytes(self.RECORD - len(record)), 0)
            if new:
                # Whatever it held before (nothing, or a journal written by
                # rename) goes: the record is the whole file.
                os.ftruncate(fd, self.RECORD)
            if fsync:
                # A new file needs its size and name on disk too.
                (os.fsync if new else os.fdatasync)(fd)
        except BaseException:
            # No record of an append that will not happen (a partial one
            # would only be dropped as broken, with a warning).
            self.remove(self.append_path)
            raise
        finally:
            os.close(fd)

    def clear_append(self) -> None:
        """The append is complete (or undone): zero the record, without a sync."""
        try:
            fd = os.open(self.append_path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            if os.fstat(fd).st_size == self.RECORD:
                _pwrite_all(fd, bytes(self.RECORD), 0)
                return
        finally:
            os.close(fd)
        self.remove(self.append_path)

    def _write(self, path: str, header: dict[str, object], payload: bytes,
               fsync: bool) -> None:
        os.makedirs(self.directory, 0o700, exist_ok=True)
        line = _MAGIC + b"".join(b" %s=%s" % (k.encode(), str(v).encode())
                                 for k, v in header.items()) + b"\n"
        # A temporary name and a rename: a journal under its real name is
        # always whole (the directory is ours, so rename works there).
        temp = path + ".tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _pwrite_all(fd, line + payload, 0)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, path)

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@dataclass(frozen=True, slots=True)
class _Entry:
    kind: str
    fields: dict[str, str]
    payload: bytes

    def int(self, name: str) -> int:
        return int(self.fields[name])


def _read(path: str) -> _Entry | None:
    """A journal file, or C{None} if absent or unreadable (logged)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if not data.strip(b"\0"):
        return None  # a cleared append record
    line, nl, payload = data.partition(b"\n")
    words = line.split(b" ")
    try:
        if not nl or b" ".join(words[:2]) != _MAGIC:
            raise ValueError("not a journal")
        fields = dict(w.decode().split("=", 1) for w in words[2:])
        size = int(fields["len"])
        # An append record is padded with zeros to its fixed size.
        if len(payload) < size or payload[size:].strip(b"\0"):
            raise ValueError("truncated")
        payload = payload[:size]
        return _Entry(fields["kind"], fields, payload)
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        _log.warn("Ignoring the broken mbox journal {path}: {error}", path=path, error=str(e))
        with contextlib.suppress(OSError):
            os.unlink(path)
        return None


def common_prefix(a: bytes, b: bytes) -> int:
    """The length of the longest common prefix of C{a} and C{b}."""
    ma, mb = memoryview(a), memoryview(b)
    n = min(len(a), len(b))
    lo, step = 0, 1 << 16
    while lo < n and ma[lo:min(lo + step, n)] == mb[lo:min(lo + step, n)]:
        lo += step
    if lo >= n:
        return n
    hi = min(lo + step, n)
    # The first difference is in [lo, hi): bisect on equal prefixes.
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ma[lo:mid] == mb[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo if ma[lo:lo + 1] != mb[lo:lo + 1] else hi


def _ours_then_zeros(region: bytes, ours: bytes) -> bool:
    """Whether C{region} is a prefix of C{ours} followed only by zero bytes."""
    i = common_prefix(region, ours)
    return region.count(0, i) == len(region) - i


def pread_all(fd: int, offset: int, size: int) -> bytes:
    """
    C{size} bytes at C{offset} (fewer at end of file).  One read into one
    string where the kernel allows (Linux reads at most 2 GiB per call):
    reading in pieces and joining them held the region twice, which for
    a large message just appended (or a large mbox) doubled the peak.
    """
    chunk = os.pread(fd, min(size, _MAX_READ), offset) if size > 0 else b""
    if len(chunk) >= size or not chunk:
        return chunk
    chunks = [chunk]
    offset += len(chunk)
    size -= len(chunk)
    while size > 0:
        chunk = os.pread(fd, min(size, 1 << 24), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        size -= len(chunk)
    return b"".join(chunks)


#: The most one read returns on Linux (MAX_RW_COUNT).
_MAX_READ = 0x7FFFF000


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


# -- writing --------------------------------------------------------------------


def append_bytes(fd: int, old_size: int, data, journal: Journal | None,
                 fsync: bool, patches: list[tuple[int, bytes]] = ()) -> None:
    """
    Append C{data} at C{old_size} (the file's size, under the write lock):
    journal, extend, write, fsync, clear the journal.  An error truncates
    the file back before it is raised.

    @param data: bytes, or a list of pieces, each bytes or an object with
        C{len()} and C{chunks()} (a L{storage.mbox.rewrite.SpooledBody}),
        written in order without being joined.
    @param patches: C{(offset, bytes)} overwrites of the same length
        before C{old_size} (the C{X-IMAPbase} last UID's digits), written
        after the append and made durable by the same fsync.  Each is
        whole or absent after a crash, and either way the file is
        consistent: a last UID stored ahead of the messages only leaves a
        gap in the UIDs, one behind them is raised by the X-UID headers.
    """
    pieces = [data] if isinstance(data, (bytes, bytearray, memoryview)) else list(data)

    def chunks():
        for piece in pieces:
            if isinstance(piece, (bytes, bytearray, memoryview)):
                yield piece
            else:
                yield from piece.chunks()

    new_size = old_size + sum(len(p) for p in pieces)
    if journal is not None:
        sha = hashlib.sha256()
        head = b""
        for chunk in chunks():
            sha.update(chunk)
            if len(head) < _HEAD:
                head += bytes(chunk[:_HEAD - len(head)])
        try:
            journal.record_append({
                "kind": "append", "ino": os.fstat(fd).st_ino, "old": old_size,
                "new": new_size, "sha": sha.hexdigest(), "len": len(head)},
                head, fsync)
        except OSError as e:
            _log.warn("Cannot write the journal {path} ({error}): appending without one",
                      path=journal.append_path, error=e.strerror or str(e))
            journal = None
    try:
        os.ftruncate(fd, new_size)
        offset = old_size
        for chunk in chunks():
            _pwrite_all(fd, chunk, offset)
            offset += len(chunk)
        for at, patch in patches:
            _pwrite_all(fd, patch, at)
        if fsync:
            os.fsync(fd)
    except BaseException:
        # Still under the lock: nobody else appended after us.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, old_size)
        if journal is not None:
            journal.clear_append()
        raise
    if journal is not None:
        journal.clear_append()


def overwrite(fd: int, old: bytes, new: bytes, journal: Journal | None, fsync: bool,
              base: int = 0) -> None:
    """
    Replace the file's content C{old} from offset C{base} to its end (under
    the write lock) by C{new} in place, with a journal that makes a crash
    recoverable (see the module docstring).
    """
    start = base + common_prefix(old, new)
    old_size, new_size = base + len(old), base + len(new)
    if start == new_size:
        os.ftruncate(fd, new_size)
        if fsync:
            os.fsync(fd)
        return
    grow = new_size > old_size
    path = None
    if journal is not None:
        path = journal.rewrite_path
        header = {"kind": "grow" if grow else "shrink", "ino": os.fstat(fd).st_ino,
                  "start": start, "old": old_size, "new": new_size}
        if grow:
            payload = new[start - base:]
        else:
            header["sha"] = _sha(memoryview(new)[start - base:])
            payload = old[start - base:]
        header["len"] = len(payload)
        journal._write(path, header, payload, fsync)
    try:
        if grow:
            os.ftruncate(fd, new_size)
        _pwrite_all(fd, memoryview(new)[start - base:], start)
        if not grow:
            os.ftruncate(fd, new_size)
        if fsync:
            os.fsync(fd)
    except OSError:
        if journal is not None:
            with contextlib.suppress(OSError):
                _recover_rewrite(fd, journal, fsync)
        raise
    if path is not None:
        journal.remove(path)


# -- recovery -------------------------------------------------------------------


def recover(fd: int, journal: Journal, fsync: bool,
            replace: Callable[[bytes, bytes], None]) -> list[str]:
    """
    Under the write lock: finish or undo whatever the journals of C{fd}'s
    mbox describe, then remove them.

    @param replace: C{replace(old, new)} rewrites the whole file from its
        content C{old} to C{new} safely (by rename, or L{overwrite}); used
        to cut a torn append out from under mail appended after it.
    @return: what was done, for the log (empty if there was no journal).
    """
    done = []
    note = _recover_rewrite(fd, journal, fsync)
    if note:
        done.append(note)
    note = _recover_append(fd, journal, fsync, replace)
    if note:
        done.append(note)
    return done


def _stale(entry: _Entry, fd: int) -> bool:
    return os.fstat(fd).st_ino != entry.int("ino")


def _recover_rewrite(fd: int, journal: Journal, fsync: bool) -> str | None:
    entry = _read(journal.rewrite_path)
    if entry is None:
        return None
    if _stale(entry, fd):
        journal.remove(journal.rewrite_path)
        return "dropped a journal of a file since replaced"
    start, old, new = entry.int("start"), entry.int("old"), entry.int("new")
    size = os.fstat(fd).st_size
    if entry.kind == "grow":
        ext = entry.payload[old - start:]
        region = pread_all(fd, old, new - old) if size >= new else b""
        if size >= new and _ours_then_zeros(region, ext):
            _pwrite_all(fd, entry.payload, start)
            note = "finished an interrupted rewrite"
        else:
            note = "dropped the journal of a rewrite that had not begun"
    else:
        old_tail = entry.payload
        if _sha(pread_all(fd, start, new - start)) == entry.fields["sha"]:
            remnant = old_tail[new - start:]
            unfinished = (new < old and size >= old
                          and pread_all(fd, new, old - new) == remnant)
            if unfinished and size == old:
                os.ftruncate(fd, new)
                note = "finished an interrupted rewrite"
            elif unfinished:
                # Mail was appended after the old end: keep it where it is.
                _pwrite_all(fd, old_tail, start)
                note = "rolled back an interrupted rewrite (mail was appended since)"
            else:
                note = "removed the journal of a finished rewrite"
        elif size < old:
            note = "dropped the journal of a file that another program cut"
        else:
            _pwrite_all(fd, old_tail, start)
            note = "rolled back an interrupted rewrite"
    if fsync:
        os.fsync(fd)
    journal.remove(journal.rewrite_path)
    return note


def _torn(fd: int, entry: _Entry) -> bool:
    """Whether the append C{entry} describes left a torn region in the file."""
    old, new = entry.int("old"), entry.int("new")
    if os.fstat(fd).st_size < new:
        return False  # never extended: the append had not begun
    region = pread_all(fd, old, new - old)
    if _sha(region) == entry.fields["sha"]:
        return False  # complete
    # Torn: the last byte was never written (zero) and the region starts
    # with our first bytes, as far as they were written, then zeros.
    return region[-1:] == b"\0" and _ours_then_zeros(region[:_HEAD], entry.payload)


def _recover_append(fd: int, journal: Journal, fsync: bool,
                    replace: Callable[[bytes, bytes], None]) -> str | None:
    entry = _read(journal.append_path)
    if entry is None:
        return None
    if _stale(entry, fd):
        journal.remove(journal.append_path)
        return "dropped an append journal of a file since replaced"
    old, new = entry.int("old"), entry.int("new")
    if not _torn(fd, entry):
        journal.remove(journal.append_path)
        return "removed the journal of an append that finished or never began"
    size = os.fstat(fd).st_size
    if size == new:
        os.ftruncate(fd, old)
        if fsync:
            os.fsync(fd)
        note = "cut a torn append"
    else:
        content = pread_all(fd, 0, size)
        replace(content, content[:old] + content[new:])
        note = "cut a torn append from under mail appended after it"
    journal.remove(journal.append_path)
    return note


def torn_append(fd: int, journal: Journal) -> tuple[int, int] | None:
    """
    For a reader that cannot repair: C{(start, end)} of a torn append of
    ours in the file open as C{fd}, which clients must not be shown.
    """
    entry = _read(journal.append_path) if os.path.exists(journal.append_path) else None
    if entry is None or _stale(entry, fd) or not _torn(fd, entry):
        return None
    return entry.int("old"), entry.int("new")
