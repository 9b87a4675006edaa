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
and replace the file by rename, so readers never need a lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from storage.errors import BrokenMailbox, StoreError
from storage.maildir.files import atomic_write
from storage.maildir.filename import INFO_SEP

__all__ = ["UIDLIST_NAME", "UidlistRecord", "Uidlist", "UidlistFile"]

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
        records: list[UidlistRecord] = []
        last = 0
        fast = version == 3
        for lineno, line in enumerate(lines[1:], start=2):
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
        return cls(uidvalidity, nextuid, guid, tuple(header_ext), tuple(records), version)

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


class UidlistFile:
    """
    The C{dovecot-uidlist} file of one Maildir, with a parse cache keyed
    on the file's identity (inode, size, mtime, ctime): the file is only
    ever replaced by rename, so a new version always has a new inode.
    """

    def __init__(self, directory: str, fsync: bool = True) -> None:
        self.path = os.path.join(directory, UIDLIST_NAME)
        self.fsync = fsync
        self._key: tuple[int, int, int, int] | None = None
        self._cached: Uidlist | None = None

    def read(self) -> Uidlist | None:
        """The current file, or C{None} if there is none yet."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                if key == self._key and self._cached is not None:
                    return self._cached
                data = f.read()
        except FileNotFoundError:
            self._key = self._cached = None
            return None
        parsed = Uidlist.parse(data, self.path)
        self._key, self._cached = key, parsed
        return parsed

    def write(self, uidlist: Uidlist) -> None:
        """Replace the file; the caller holds the uidlist dotlock."""
        atomic_write(self.path, uidlist.serialize(), fsync=self.fsync)
        self._key = None

    def append(self, uidlist: Uidlist, added: tuple[UidlistRecord, ...]) -> None:
        """
        Add C{added} (already part of C{uidlist}) at the end of the file, as
        Dovecot does, instead of rewriting every line: an APPEND then costs
        the same in a mailbox of 10 messages or of 100,000.  The header's
        C{N} is left as it is; readers take the larger of C{N} and the last
        UID + 1 (L{Uidlist.next_uid}).  The caller holds the uidlist
        dotlock.  A file that does not end in a newline (a torn append) or
        is missing is rewritten whole instead.
        """
        lines = "".join(
            " ".join([str(r.uid), *r.ext, ":" + r.base]) + "\n" for r in added
        ).encode(_ENC, _ERR)
        # Written at the size fstat() reports after open(), not with
        # O_APPEND: over NFS an append goes to the offset the client
        # believes is the end, and open() is what revalidates that size
        # (close-to-open).  We hold the lock, so nobody else writes.
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            self.write(uidlist)
            return
        except OSError as e:
            raise StoreError(f"cannot append to {self.path}: {e.strerror or e}") from e
        try:
            size = os.fstat(fd).st_size
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
