# -*- test-case-name: tests.storage.maildir.test_maildir_uidlist -*-
"""
Dovecot's C{dovecot-uidlist}: the truth about UIDs (DESIGN.md rule 1).

Version 3, as Dovecot 1.1 and later write it::

    3 V<uidvalidity> N<nextuid> G<mailbox guid> [other header fields]
    <uid> [<ext field> ...] :<base name>

Extension fields are a key letter followed by a value (C{W1234} is the
CRLF size, C{G...} a message GUID, C{P...} a POP3 UIDL).  We keep fields we
do not know, in header and records, byte for byte when we rewrite the file.
Version 1 files (C{1 <uidvalidity> <nextuid>} and C{<uid> <name>} lines) are
read and rewritten as version 3, as Dovecot does.

Writers hold the dotlock C{dovecot-uidlist.lock} (the lock Dovecot takes)
and replace the file by rename or append whole lines, so readers never
need a lock; what a writer reads under the lock is checked before any UID
is given from it (L{UidlistFile.read_locked}).
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from storage import nfs
from storage.errors import BrokenMailbox, StaleRead, StoreError
from storage.maildir.files import atomic_write
from storage.maildir.filename import INFO_SEP
from storage.nfs import flush_dir, flush_fd

__all__ = ["UIDLIST_NAME", "UidlistRecord", "Uidlist", "UidlistFile", "forget"]

UIDLIST_NAME = "dovecot-uidlist"

_ENC = "utf-8"
# File names are bytes on disk; surrogateescape round-trips any of them
# through str, the same way os.listdir() does.
_ERR = "surrogateescape"


class UidlistRecord(NamedTuple):
    """
    One message line (a named tuple: 10,000 are built per uidlist read).

    @ivar base: the base name (unique part) of the message file.
    @ivar ext: extension fields as written (C{"W1234"}), unknown ones kept.
    """

    uid: int
    base: str
    ext: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Uidlist:
    """
    The parsed content of a C{dovecot-uidlist} file.

    @ivar nextuid: the C{N} header as written.  Dovecot rewrites the file
        lazily and may leave C{N} below the highest listed UID (the
        fixture's C{Archive} says C{N1} above UIDs 1-3), so use
        L{next_uid} to allocate.
    @ivar header_ext: header fields other than V, N and G, kept verbatim.
    """

    uidvalidity: int
    nextuid: int
    guid: str = ""
    header_ext: tuple[str, ...] = ()
    records: tuple[UidlistRecord, ...] = field(default=())
    version: int = 3

    @property
    def next_uid(self) -> int:
        """The lowest UID never given in this UIDVALIDITY."""
        last = self.records[-1].uid + 1 if self.records else 1
        return max(self.nextuid, last, 1)

    @classmethod
    def parse(cls, data: bytes, path: str = UIDLIST_NAME) -> "Uidlist":
        """
        Parse a file's content.

        @raises BrokenMailbox: the header is not a version 1 or 3 header, a
            line is malformed, or UIDs are not strictly ascending; the file
            is left as it is.
        """
        text = data.decode(_ENC, _ERR)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        elif len(lines) > 1:
            # A last line without its newline is an append cut short by a
            # crash (L{UidlistFile.append}).  Its message was never moved
            # out of tmp/ (the line is written first), so dropping the
            # line loses nothing; the next append rewrites the file.
            lines.pop()
        if not lines:
            raise BrokenMailbox(f"{path}: empty uidlist file")
        header = lines[0].split(" ")
        guid = ""
        header_ext: list[str] = []
        try:
            version = int(header[0])
            if version == 1:
                uidvalidity, nextuid = int(header[1]), int(header[2])
            elif version == 3:
                uidvalidity = nextuid = -1
                for token in header[1:]:
                    if not token:
                        continue
                    key, value = token[0], token[1:]
                    if key == "V":
                        uidvalidity = int(value)
                    elif key == "N":
                        nextuid = int(value)
                    elif key == "G":
                        guid = value
                    else:
                        header_ext.append(token)
                if uidvalidity < 0 or nextuid < 0:
                    raise ValueError("V or N missing")
            else:
                raise BrokenMailbox(f"{path}: unsupported uidlist version {version}")
        except (ValueError, IndexError) as e:
            raise BrokenMailbox(f"{path}: bad uidlist header {lines[0]!r}: {e}") from None
        records = _parse_lines(lines[1:], version, 0, 2, path)
        return cls(uidvalidity, nextuid, guid, tuple(header_ext), tuple(records), version)

    def extended(self, tail: bytes, path: str = UIDLIST_NAME) -> "Uidlist":
        """
        This content with C{tail} (whole lines appended to the file since,
        as L{UidlistFile.append} and Dovecot add them) parsed onto it: a
        session's re-sync after a delivery then reads the new lines only,
        not the 10,000 it has.

        @raises BrokenMailbox: as L{parse}.
        """
        lines = tail.decode(_ENC, _ERR).split("\n")
        lines.pop()  # the tail ends with a newline
        last = self.records[-1].uid if self.records else 0
        added = _parse_lines(lines, self.version, last, 0, path)
        return replace(self, records=self.records + tuple(added)) if added else self

    def serialize(self) -> bytes:
        """The file content, always in version 3 format."""
        head = ["3", f"V{self.uidvalidity}", f"N{self.nextuid}"]
        if self.guid:
            head.append(f"G{self.guid}")
        head.extend(self.header_ext)
        out = [" ".join(head)]
        for r in self.records:
            out.append(" ".join([str(r.uid), *r.ext, ":" + r.base]))
        return ("\n".join(out) + "\n").encode(_ENC, _ERR)

    def with_records(self, records: tuple[UidlistRecord, ...]) -> "Uidlist":
        """A copy with other records and C{N} raised to cover them."""
        new = replace(self, records=records, version=3)
        return replace(new, nextuid=max(self.next_uid, new.next_uid))


def _parse_lines(lines: list[str], version: int, last: int, first_lineno: int,
                 path: str) -> list[UidlistRecord]:
    """Records of the uidlist C{lines}, UIDs strictly ascending above C{last}."""
    records: list[UidlistRecord] = []
    fast = version == 3
    for lineno, line in enumerate(lines, start=first_lineno):
        if not line:
            continue
        # The common line, "<uid> :<name>", inline (10,000 per read).
        uid_text, _sp, rest = line.partition(" :")
        if fast and uid_text.isdigit() and uid_text[0] != "0":
            base = rest.partition(INFO_SEP)[0]
            record = UidlistRecord(int(uid_text), base) if base else None
        else:
            record = _parse_record(line, version)
        if record is None:
            raise BrokenMailbox(f"{path}:{lineno}: bad uidlist line {line!r}")
        if record.uid <= last:
            raise BrokenMailbox(
                f"{path}:{lineno}: UID {record.uid} is not above the previous UID {last}"
            )
        last = record.uid
        records.append(record)
    return records


def _parse_record(line: str, version: int) -> UidlistRecord | None:
    uid_text, sep, rest = line.partition(" ")
    if not sep or not uid_text.isdigit() or int(uid_text) == 0:
        return None
    uid = int(uid_text)
    if version == 1:
        name = rest
        ext: list[str] = []
    else:
        ext = []
        pos = 0
        while True:
            if rest.startswith(":", pos):
                name = rest[pos + 1 :]
                break
            space = rest.find(" ", pos)
            if space < 0:
                return None
            if space > pos:
                ext.append(rest[pos:space])
            pos = space + 1
    base = name.split(INFO_SEP, 1)[0]
    if not base:
        return None
    return UidlistRecord(uid, base, tuple(ext))


#: Uidlist files this process keeps a high-water mark for (LRU).
_MAX_SEEN = 4096


class _Seen(NamedTuple):
    """
    What this process has seen of one uidlist in one UIDVALIDITY: UIDs
    below C{next_uid} were given (read, assigned or announced), and
    C{last} is the highest line it read or wrote.
    """

    uidvalidity: int
    next_uid: int
    last: UidlistRecord | None


_seen_lock = threading.Lock()
_seen: "OrderedDict[str, _Seen]" = OrderedDict()


def forget(directory: str) -> None:
    """
    Drop what this process saw of the uidlists of the Maildir
    C{directory} and of the Maildirs below it: the store deleted or
    renamed them, and a Maildir made there later (by us or by a program
    that leaves the uidlist to us) starts afresh, not "missing".
    """
    top = os.path.abspath(directory)
    inside = top.rstrip(os.sep) + os.sep
    with _seen_lock:
        for key in [k for k in _seen if k.startswith(inside)]:
            del _seen[key]


#: The uidlists this process parsed, by absolute path: (identity key,
#: content), shared by every L{UidlistFile} of a path.  A delivery opens
#: the Maildir afresh each time; parsing the 10,000 lines of a synced
#: mailbox's file for each one cost 30 ms, most of an LMTP delivery.  The
#: content is immutable, so threads share it.  Bounded by records kept
#: (about 1.9 MB per 10,000 records).
_parsed_lock = threading.Lock()
_parsed: "OrderedDict[str, tuple[tuple, Uidlist]]" = OrderedDict()
_MAX_PARSED_RECORDS = 50_000


def _shared_parse(path: str, data: bytes, key: tuple | None) -> Uidlist:
    """
    L{Uidlist.parse} of C{data}, the whole file at C{path} as it is at
    C{key} (None: the read may be short, not to be kept): from this
    process's last parse of the file when it is the same file (C{key}),
    or that file with lines appended (same inode, larger, the old content
    still ending in the last record it had: writers append whole lines
    under the lock or replace the file by rename, which changes the
    inode); else parsed whole.
    """
    with _parsed_lock:
        entry = _parsed.get(path)
    parsed = None
    if entry is not None and key is not None:
        old_key, old = entry
        if old_key == key:
            parsed = old
        elif old_key[0] == key[0] and 0 < old_key[1] < key[1] and _still_ends(data, old_key[1], old):
            try:
                parsed = old.extended(data[old_key[1]:], path)
            except BrokenMailbox:
                parsed = None
    if parsed is None:
        parsed = Uidlist.parse(data, path)
    if key is not None:
        with _parsed_lock:
            _parsed.pop(path, None)
            _parsed[path] = (key, parsed)
            kept = sum(len(u.records) for _k, u in _parsed.values())
            while kept > _MAX_PARSED_RECORDS and len(_parsed) > 1:
                _k, dropped = _parsed.popitem(last=False)[1]
                kept -= len(dropped.records)
    return parsed


def _still_ends(data: bytes, size: int, old: Uidlist) -> bool:
    """
    Whether C{data[:size]} ends, after a newline, in the last line of
    C{old} and C{data} ends in a newline: an append of whole lines to the
    file C{old} was parsed from, not a file written anew in place.
    """
    if not data.endswith(b"\n") or data[size - 1:size] != b"\n":
        return False
    start = data.rfind(b"\n", 0, size - 1) + 1
    line = data[start:size - 1].decode(_ENC, _ERR)
    if not old.records:
        return start == 0  # only the header so far
    last = old.records[-1]
    uid_text, _sp, rest = line.partition(" ")
    return uid_text == str(last.uid) and rest.endswith(":" + last.base) or (
        old.version == 1 and rest == last.base and uid_text == str(last.uid))


def _record_of(uidlist: Uidlist, uid: int) -> UidlistRecord | None:
    records = uidlist.records
    i = bisect_left(records, uid, key=_uid_of)
    if i < len(records) and records[i].uid == uid:
        return records[i]
    return None


def _uid_of(record: UidlistRecord) -> int:
    return record.uid


def _read_to_eof(fd: int) -> bytes:
    # Until read() says end of file, whatever size fstat() gave: the size
    # is only the client's belief (a cached attribute over NFS).
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


class UidlistFile:
    """
    The C{dovecot-uidlist} file of one Maildir, with a parse cache keyed
    on the file's identity (inode, size, mtime, ctime): the file is only
    ever replaced by rename, so a new version always has a new inode.

    Reads under the uidlist lock (L{read_locked}) are the ones UIDs are
    given from, so they are checked (issue 20): the bytes read must reach
    the file's end as the server has it after a flush, and the content
    must not be older than what this process already saw of the file (a
    high-water mark per file and UIDVALIDITY, L{_Seen}).  A read that
    fails either check is flushed and made again; one that keeps failing
    raises L{StaleRead} and nothing is written.  L{write} and L{append}
    refuse to give a UID below the mark in any case.

    @ivar nfs: flush the client's attribute cache of the file before
        trusting its size (C{[mail] nfs_storage}, L{storage.nfs}).
    """

    def __init__(self, directory: str, fsync: bool = True, nfs: bool = False) -> None:
        self.path = os.path.join(directory, UIDLIST_NAME)
        self.fsync = fsync
        self.nfs = nfs
        self._key: tuple[int, int, int, int] | None = None
        self._cached: Uidlist | None = None
        self._seen_key = os.path.abspath(self.path)
        #: The size of the file as the last L{read_locked} found it: where
        #: an append under the same lock must start.
        self._locked_size: int | None = None

    def read(self) -> Uidlist | None:
        """
        The current file, or C{None} if there is none yet.  Without the
        lock: good for showing, never for giving UIDs (L{read_locked}).
        """
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                if key == self._key and self._cached is not None:
                    self._observe(self._cached)
                    return self._cached
                parsed = self._grown(f.fileno(), key)
                if parsed is not None:
                    self._key, self._cached = key, parsed
                    self._observe(parsed)
                    return parsed
                data = f.read()
        except FileNotFoundError:
            self._key = self._cached = None
            return None
        # Kept only when the bytes read reach the size the key has: a read
        # cut short by a stale size must not stand for the whole file.
        whole = key if len(data) == key[1] else None
        parsed = _shared_parse(self._seen_key, data, whole)
        self._key, self._cached = whole, parsed
        self._observe(parsed)
        return parsed

    def _grown(self, fd: int, key: tuple) -> Uidlist | None:
        """
        The cached content with the lines appended since it was read, if
        the file only grew (same inode, larger, whole lines added after a
        newline: writers append whole lines under the lock or replace the
        file by rename); else None (read it all).
        """
        old, cached = self._key, self._cached
        if old is None or cached is None or key[0] != old[0] or key[1] <= old[1] or not old[1]:
            return None
        data = os.pread(fd, key[1] - old[1] + 1, old[1] - 1)
        if len(data) != key[1] - old[1] + 1 or data[:1] != b"\n" or data[-1:] != b"\n":
            return None
        try:
            return cached.extended(data[1:], self.path)
        except BrokenMailbox:
            return None

    def behind(self, uidlist: Uidlist) -> bool:
        """
        Whether C{uidlist} (a read without the lock) is older than what
        this process already saw of the file in its UIDVALIDITY: a stale
        view that must not be shown as the mailbox's state.
        """
        with _seen_lock:
            seen = _seen.get(self._seen_key)
        return (
            seen is not None
            and seen.uidvalidity == uidlist.uidvalidity
            and uidlist.next_uid < seen.next_uid
        )

    def read_locked(
        self, known: dict[int, str] | None = None, uidvalidity: int | None = None
    ) -> Uidlist | None:
        """
        The current file, read by a caller holding the uidlist dotlock, to
        give UIDs or act on them: read to its end, then checked against
        the file's size as the server has it (after a flush, L{flush_fd})
        and against what this process saw of it before (L{_Seen}).

        @param known: UID -> base name pairs the caller acts on (the UIDs
            a session expunges or flags, as it was shown them) in
            C{uidvalidity}: a UID never changes its message within one
            UIDVALIDITY, so a file pairing one with another base is not
            the truth.
        @raises StaleRead: the read stayed short or older than what this
            process knows after L{storage.nfs.STALE_READS} flushed reads.
            A uidlist that vanished after we had read it is reported once
            this way, and forgotten: the next attempt starts a new
            UIDVALIDITY, never a renumbering of the old one.
        """
        problem = ""
        reads = nfs.STALE_READS
        for attempt in range(reads):
            if attempt:
                nfs.stale_pause(attempt)
            found = self._read_checked()
            if isinstance(found, str):
                problem = found
                continue
            uidlist, size = found
            problem = self._contradiction(uidlist, known, uidvalidity)
            if not problem:
                self._locked_size = size
                if uidlist is not None:
                    self._observe(uidlist, locked=True)
                return uidlist
        if problem.startswith("missing"):
            with _seen_lock:
                _seen.pop(self._seen_key, None)
        raise StaleRead(
            f"{self.path}: {problem} ({reads} reads under the lock, caches "
            f"flushed); nothing was changed, try again"
        )

    def _read_checked(self) -> tuple[Uidlist | None, int] | str:
        """One read under the lock: (uidlist, size) or what was wrong."""
        if self.nfs:
            # The directory's cached lookup of the name, then the file's
            # own attributes after the read.
            flush_dir(os.path.dirname(self.path))
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._key = self._cached = None
            return None, 0
        try:
            data = _read_to_eof(fd)
            st = flush_fd(fd) if self.nfs else os.fstat(fd)
        finally:
            os.close(fd)
        if st.st_size != len(data):
            # Writers replace the file or append whole lines under the
            # lock we hold: a size other than what we read means the read
            # ended where a stale cached size said, not at the end.
            return f"short read: {len(data)} bytes of {st.st_size}"
        # With NFS the flush itself moves the ctime: the key leaves it out
        # (writers replace the file or append to it, which moves the
        # inode or the size, never the ctime alone).
        key = (st.st_ino, st.st_size, st.st_mtime_ns, 0 if self.nfs else st.st_ctime_ns)
        if key != self._key or self._cached is None:
            self._key, self._cached = key, _shared_parse(self._seen_key, data, key)
        return self._cached, len(data)

    def _contradiction(
        self, uidlist: Uidlist | None, known: dict[int, str] | None, uidvalidity: int | None
    ) -> str:
        """What in C{uidlist} contradicts what this process saw, or ""."""
        with _seen_lock:
            seen = _seen.get(self._seen_key)
        if uidlist is None:
            if seen is not None:
                return (f"missing, though this process read it before (UIDVALIDITY "
                        f"{seen.uidvalidity}, next UID {seen.next_uid})")
            return ""
        if seen is not None and seen.uidvalidity == uidlist.uidvalidity:
            if uidlist.next_uid < seen.next_uid:
                return (f"next UID {uidlist.next_uid} read, but this process already "
                        f"saw UIDs up to {seen.next_uid - 1} (UIDVALIDITY {seen.uidvalidity})")
            last = seen.last
            if last is not None:
                record = _record_of(uidlist, last.uid)
                if record is not None and record.base != last.base:
                    return (f"UID {last.uid} is {record.base}, but this process saw it "
                            f"as {last.base}")
        if known and uidvalidity == uidlist.uidvalidity:
            if len(known) > 32:
                # A STORE 1:* on 10,000 messages: one dictionary, not
                # 10,000 binary searches.
                base_of = {r.uid: r.base for r in uidlist.records}.get
            else:
                def base_of(uid: int) -> str | None:
                    record = _record_of(uidlist, uid)
                    return None if record is None else record.base
            for uid, base in known.items():
                now = base_of(uid)
                if now is not None and now != base:
                    return f"UID {uid} is {now}, but the session was shown {base}"
        return ""

    def _observe(self, uidlist: Uidlist, locked: bool = False) -> None:
        """
        Raise the high-water mark with a read or written C{uidlist}.  A
        different UIDVALIDITY replaces the mark only from a read under the
        lock or a write (a lock-free read may be stale).
        """
        last = uidlist.records[-1] if uidlist.records else None
        key = self._seen_key
        with _seen_lock:
            seen = _seen.get(key)
            if seen is None or (locked and seen.uidvalidity != uidlist.uidvalidity):
                _seen[key] = _Seen(uidlist.uidvalidity, uidlist.next_uid, last)
            elif seen.uidvalidity == uidlist.uidvalidity:
                if last is None or (seen.last is not None and seen.last.uid > last.uid):
                    last = seen.last
                if uidlist.next_uid > seen.next_uid or last is not seen.last:
                    _seen[key] = _Seen(seen.uidvalidity, max(seen.next_uid, uidlist.next_uid),
                                       last)
            else:
                return
            _seen.move_to_end(key)
            while len(_seen) > _MAX_SEEN:
                _seen.popitem(last=False)

    def _guard(self, uidlist: Uidlist, added: tuple[UidlistRecord, ...]) -> None:
        """
        Refuse to give a UID this process has already seen given (read,
        written or shown) in this UIDVALIDITY, whatever the caller read.
        """
        if not added:
            return
        with _seen_lock:
            seen = _seen.get(self._seen_key)
        low = min(r.uid for r in added)
        if seen is not None and seen.uidvalidity == uidlist.uidvalidity and low < seen.next_uid:
            raise StaleRead(
                f"{self.path}: refusing to give UID {low}: this process already saw UIDs up "
                f"to {seen.next_uid - 1} (UIDVALIDITY {seen.uidvalidity}); nothing was changed"
            )

    def write(self, uidlist: Uidlist, added: tuple[UidlistRecord, ...] = ()) -> None:
        """
        Replace the file; the caller holds the uidlist dotlock.

        @param added: the records of C{uidlist} that get their UIDs now
            (L{_guard}).
        """
        self._guard(uidlist, added)
        atomic_write(self.path, uidlist.serialize(), fsync=self.fsync)
        self._key = None
        self._locked_size = None
        self._observe(uidlist, locked=True)

    def append(self, uidlist: Uidlist, added: tuple[UidlistRecord, ...]) -> None:
        """
        Add C{added} (already part of C{uidlist}) at the end of the file, as
        Dovecot does, instead of rewriting every line: an APPEND then costs
        the same in a mailbox of 10 messages or of 100,000.  The header's
        C{N} is left as it is; readers take the larger of C{N} and the last
        UID + 1 (L{Uidlist.next_uid}).  The caller holds the uidlist
        dotlock and read C{uidlist} under it (L{read_locked}).  A file
        that does not end in a newline (a torn append) or is missing is
        rewritten whole instead.

        @raises StaleRead: the file's size (flushed) is not the size that
            read found: the lines would land elsewhere than after the
            lines C{uidlist} was read from.
        """
        self._guard(uidlist, added)
        lines = "".join(
            " ".join([str(r.uid), *r.ext, ":" + r.base]) + "\n" for r in added
        ).encode(_ENC, _ERR)
        # Written at the size fstat() reports after open() (and a flush),
        # not with O_APPEND: over NFS an append goes to the offset the
        # client believes is the end, and open() is what revalidates that
        # size (close-to-open).  We hold the lock, so nobody else writes.
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            self.write(uidlist)
            return
        except OSError as e:
            raise StoreError(f"cannot append to {self.path}: {e.strerror or e}") from e
        try:
            size = (flush_fd(fd) if self.nfs else os.fstat(fd)).st_size
            expected = self._locked_size
            if expected is not None and size != expected:
                # Never write at a size we did not read up to: at a stale
                # smaller one the lines would overwrite others' lines.
                raise StaleRead(
                    f"{self.path}: {size} bytes now, {expected} read under the same lock; "
                    f"nothing was changed, try again"
                )
            clean = size > 0 and os.pread(fd, 1, size - 1) == b"\n"
            if clean:
                view = memoryview(lines)
                pos = size
                while view:
                    n = os.pwrite(fd, view, pos)
                    view, pos = view[n:], pos + n
                if self.fsync:
                    os.fsync(fd)
        except OSError as e:
            raise StoreError(f"cannot append to {self.path}: {e.strerror or e}") from e
        finally:
            os.close(fd)
        if not clean:
            self.write(uidlist)
            return
        self._key = None
        self._locked_size = None
        self._observe(uidlist, locked=True)
