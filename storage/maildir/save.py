# -*- test-case-name: tests.storage.maildir.test_maildir_save -*-
"""
Write transactions on a Maildir (L{ITransaction}).

Message data is written at once to C{tmp/} (and fsynced), so that commit
only renames: DESIGN.md rule 4, and the Maildir spec's delivery path
C{tmp/} -> C{new/} or C{cur/}.  Commit holds the uidlist dotlock while it
gives UIDs, rewrites C{dovecot-uidlist} by rename and moves the files in:

 1. the uidlist is written first: if that fails nothing is visible and the
    C{tmp/} files are removed (all or nothing);
 2. then the files are renamed into place: a crash in between leaves UIDs
    that were never shown, which are simply skipped (never reused).

Flag changes rename the file to a new info part; expunge unlinks it and
its uidlist line goes at the next rewrite (as Dovecot does).  Both run
under the same lock so that our processes never see each other half-way.
Other programs rename and delete without our lock: an ENOENT makes us look
for the message's new name (keyed by the base, which never changes).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Iterable

from zope.interface import implementer

from storage.errors import MailboxReadOnly, MessageExpunged, StoreError
from storage.flagchange import FlagChange, read_with_flags
from storage.interfaces import CommitResult, IMailbox, ITransaction
from storage.maildir.content import crlf_size, lf_chunks, to_lf
from storage.maildir.filename import FLAG_LETTERS, INFO_SEP, LETTER_FLAGS, MaildirName, size_field
from storage.maildir.files import fsync_directory, locked, unique_name
from storage.maildir.keywords import KEYWORDS_NAME
from storage.maildir.sync import Entry, new_uidlist, rebuild_records, scan
from storage.maildir.uidlist import UidlistRecord

__all__ = ["MaildirTransaction", "split_flags"]

_CANONICAL = {f.lower(): f for f in FLAG_LETTERS}

#: A flag commit naming more messages than this lists the Maildir once
#: under the lock rather than checking names one by one.
_LIST_ABOVE = 32


def split_flags(flags: Iterable[str]) -> tuple[str, frozenset[str]]:
    """
    Split IMAP flags into Maildir system letters and keyword names.

    C{\\Recent} is dropped (it is never stored, see L{storage.interfaces}).

    @raises StoreError: an unknown system flag such as C{\\Foo}.
    """
    letters = []
    keywords = set()
    for flag in flags:
        if flag.startswith("\\"):
            canonical = _CANONICAL.get(flag.lower())
            if canonical is not None:
                letters.append(FLAG_LETTERS[canonical])
            elif flag.lower() != "\\recent":
                raise StoreError(f"unknown system flag {flag!r}")
        elif flag:
            keywords.add(flag)
    return "".join(letters), frozenset(keywords)


@dataclass
class _Pending:
    """A message waiting in tmp/ for its UID."""

    tmp_path: str
    base: str
    letters: str  # system and unknown uppercase letters
    keywords: frozenset[str]
    source_uid: int | None = None


@implementer(ITransaction)
class MaildirTransaction:
    """Queued writes on one L{storage.maildir.mailbox.MaildirMailbox}."""

    def __init__(self, mailbox) -> None:
        self.mailbox = mailbox
        self._pending: list[_Pending] = []
        #: uid -> the change queued for it, applied in L{commit} to the
        #: flags the file's name carries under the uidlist lock.
        self._flags: dict[int, FlagChange] = {}
        self._expunge: dict[int, None] = {}
        #: Flag sets L{change_flags} already checked (a STORE on many
        #: messages has few distinct ones).
        self._valid: set[frozenset[str]] = set()
        #: UIDs whose UNCHANGEDSINCE failed at commit.
        self._modified: list[int] = []
        self._finished = False

    # -- queueing ------------------------------------------------------------

    def _check(self) -> None:
        if self._finished:
            raise StoreError("the transaction is finished")
        if self.mailbox.readonly:
            raise MailboxReadOnly(f"mailbox {self.mailbox.name!r} is open read-only")

    def _tmp_path(self, base: str) -> str:
        return os.path.join(self.mailbox.directory, "tmp", base)

    def append(
        self, data: bytes, flags: Iterable[str] = (), internaldate: datetime | None = None
    ) -> None:
        """
        Write the message to C{tmp/} now, stored with LF line endings as
        Dovecot does, with C{,S=} (file size) and C{,W=} (CRLF size) in
        its base name so that sizes never need the file to be read.
        """
        self._check()
        body = to_lf(data)
        base = f"{unique_name()},S={len(body)},W={crlf_size(body)}"
        self._write_new(base, (body,), flags, internaldate)

    def append_file(
        self, file: BinaryIO, flags: Iterable[str] = (), internaldate: datetime | None = None
    ) -> None:
        """
        As L{append}, copying C{file} to C{tmp/} chunk by chunk.  Its sizes
        are known only once it is written, so it is written under a name
        without them and renamed, still in C{tmp/}, to one with them.
        """
        self._check()
        self._write_new(unique_name(), lf_chunks(file), flags, internaldate, sized=False)

    def _write_new(self, base: str, chunks: Iterable[bytes], flags: Iterable[str],
                   internaldate: datetime | None, sized: bool = True) -> None:
        """
        Write C{chunks} (LF content) to C{tmp/base} and queue it; without
        C{sized}, C{,S=} and C{,W=} are added to C{base} after writing.
        """
        letters, keywords = split_flags(flags)
        path = self._tmp_path(base)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            size = wsize = 0
            try:
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                    if not sized:
                        size += len(chunk)
                        wsize += crlf_size(chunk)
                if self.mailbox.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if not sized:
                written, base = path, f"{base},S={size},W={wsize}"
                path = self._tmp_path(base)
                try:
                    os.rename(written, path)
                except OSError:
                    path = written
                    raise
            if internaldate is not None:
                # INTERNALDATE is the file's mtime (Dovecot's convention).
                ts = internaldate.timestamp()
                os.utime(path, (ts, ts))
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise StoreError(f"cannot write {path}: {e.strerror or e}") from e
        self._pending.append(_Pending(path, base, letters, keywords))

    def copy_from(self, source: IMailbox, uids: Iterable[int]) -> None:
        """
        Link (or, across file systems, copy) the source files into C{tmp/}
        now, keeping flags (keywords by name: the two Maildirs' letters may
        differ) and INTERNALDATE (the mtime).
        """
        self._check()
        for uid in uids:
            if hasattr(source, "locate") and hasattr(source, "record"):
                self._copy_maildir(source, uid)
            else:
                record = _source_record(source, uid)
                data, flags = read_with_flags(source, uid, record.flags)
                self.append(data, flags, record.internaldate)
                self._pending[-1].source_uid = uid

    def _copy_maildir(self, source, uid: int) -> None:
        record = source.record(uid)
        src_base = record.key
        sizes = []
        for key in ("S", "W"):
            value = size_field(src_base, key)
            if key == "W" and value is None:
                value = record.size
            if value is not None:
                sizes.append(f",{key}={value}")
        base = unique_name() + "".join(sizes)
        tmp = self._tmp_path(base)
        for attempt in range(3):
            entry = source.locate(src_base, fresh=attempt > 0)
            if entry is None:
                break
            src = entry.path(source.directory)
            try:
                try:
                    os.link(src, tmp)
                except FileNotFoundError:
                    raise
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                        raise
                    # Another file system (or no hard links): copy, keeping
                    # the mtime, which is the INTERNALDATE.
                    shutil.copyfile(src, tmp)
                    st = os.stat(src)
                    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            except FileNotFoundError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                continue
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise StoreError(f"cannot copy {src}: {e.strerror or e}") from e
            # The flags of the file just linked, from its name (the link
            # found it under that name), not those of our last sync, which
            # another session or program may have changed since.
            letters, keywords = split_flags(source.flags_of(entry))
            letters += entry.parsed.unknown_letters()
            self._pending.append(_Pending(tmp, base, letters, keywords, uid))
            return
        raise MessageExpunged(f"message UID {uid} is gone from {source.name!r}")

    def set_flags(self, uid: int, flags: frozenset[str]) -> None:
        """Queue a full replacement of the flags of C{uid}."""
        self.change_flags(uid, FlagChange(frozenset(flags)))

    def change_flags(self, uid: int, change: FlagChange) -> None:
        """Queue a flag change; see L{ITransaction.change_flags}."""
        self._check()
        named = change.named()
        if named not in self._valid:
            split_flags(named)  # refuse bad flags now, not at commit
            self._valid.add(named)
        earlier = self._flags.get(uid)
        self._flags[uid] = change if earlier is None else earlier.then(change)

    def expunge(self, uid: int) -> None:
        """Queue the removal of C{uid}."""
        self._check()
        self._expunge[uid] = None

    # -- commit -------------------------------------------------------------

    def rollback(self) -> None:
        """Forget everything queued and remove the C{tmp/} files."""
        for pending in self._pending:
            with contextlib.suppress(OSError):
                os.unlink(pending.tmp_path)
        self._pending.clear()
        self._flags.clear()
        self._expunge.clear()
        self._finished = True

    def commit(self) -> CommitResult:
        """Apply everything queued; see the module docstring for the order."""
        if self._finished:
            raise StoreError("the transaction is finished")
        mailbox = self.mailbox
        try:
            if not (self._pending or self._flags or self._expunge):
                return CommitResult(uidvalidity=mailbox.uidvalidity)
            # Keyword letters first, outside the uidlist lock, so that the
            # two dotlocks are never held together.
            names = set()
            for pending in self._pending:
                names |= pending.keywords
            for change in set(self._flags.values()):
                names |= split_flags(change.named())[1]
            mailbox.keywords.letters_for(names)
            with locked(mailbox.uidlist_file.path):
                return self._commit_locked()
        except BaseException:
            self.rollback()
            raise
        finally:
            self._finished = True

    def _commit_locked(self) -> CommitResult:
        mailbox = self.mailbox
        directory = mailbox.directory
        # Checked against the UIDs this session acts on, as it was shown
        # them: an EXPUNGE must remove the message the client saw as that
        # UID, never one a short read renumbered into it (issue 20).
        validity, shown = mailbox.shown(itertools.chain(self._flags, self._expunge))
        uidlist = mailbox.uidlist_file.read_locked(shown, validity)
        if uidlist is None:
            uidlist = new_uidlist(mailbox._new_uidvalidity())
        appended: list[int] = []
        source_uids: list[int] = []
        if self._pending:
            # New UIDs come straight after the highest one listed and their
            # lines are appended (Dovecot does the same).  Files other
            # programs delivered meanwhile get theirs at the next sync; no
            # listing of the whole Maildir is needed here, so an APPEND
            # does not slow down as the mailbox grows.
            first = uidlist.next_uid
            # RFC 3501 section 2.3.2: what we add is recent to the first
            # session that syncs, by the modseq log's floor.
            mailbox.modseqs.start_recent(uidlist.uidvalidity, first)
            added = tuple(
                UidlistRecord(first + i, p.base) for i, p in enumerate(self._pending)
            )
            uidlist = uidlist.with_records(uidlist.records + added)
            mailbox.uidlist_file.append(uidlist, added)
            failed = []
            moved_into: set[str] = set()
            for pending, record in zip(self._pending, added):
                letters = pending.letters + mailbox.keywords.letters_for(pending.keywords)
                if letters:
                    name = MaildirName(pending.base, None, "", "").with_letters(letters)
                    target = os.path.join(directory, "cur", name)
                else:
                    # No flags: deliver to new/ like an MDA; the first
                    # session to sync takes it as \Recent.
                    target = os.path.join(directory, "new", pending.base)
                try:
                    os.rename(pending.tmp_path, target)
                except OSError as e:
                    failed.append(f"{pending.tmp_path}: {e.strerror or e}")
                    continue
                moved_into.add(os.path.dirname(target))
                appended.append(record.uid)
                if pending.source_uid is not None:
                    source_uids.append(pending.source_uid)
            self._pending.clear()
            if mailbox.fsync:
                # The message is acknowledged when this returns: its name
                # in new/ or cur/ must survive a power failure as its data
                # and its uidlist line do (DESIGN.md rule 4).
                for moved in sorted(moved_into):
                    fsync_directory(moved)
            if failed:
                raise StoreError("cannot move new messages into place: " + "; ".join(failed))
        if not (self._flags or self._expunge):
            # An APPEND or a delivery: nothing below applies, and a table
            # of every UID costs 1 ms in a mailbox of 10,000 messages.
            return CommitResult(uidvalidity=uidlist.uidvalidity, appended=tuple(appended),
                                source_uids=tuple(source_uids) if source_uids else ())
        by_uid = {r.uid: r.base for r in uidlist.records}
        changed = []
        # Per commit, not per message: a STORE 1:* on 10,000 messages
        # would otherwise stat the keywords file 10,000 times.  Every
        # keyword a change names got its letter before the lock was taken.
        known = self.mailbox.keywords.read()
        letter_of = {name: chr(97 + i) for i, name in known.items()}
        plans: dict[tuple[int, str], tuple[str, frozenset[str], frozenset[str]]] = {}
        judge = None
        if any(c.unchangedsince is not None for c in self._flags.values()):
            judge = mailbox.modseqs.judge(uidlist.uidvalidity, self._flags)
        # The names the files have now, under the lock: one listing for a
        # change of many messages (a STORE 1:* that changes few of them
        # would otherwise stat every file to prove the no-ops), else the
        # last listing's names, checked one by one.
        listing = scan(directory, mailbox.known_entries()) if len(self._flags) > _LIST_ABOVE else None
        # Renames relative to the Maildir: the kernel then walks two path
        # components per name instead of the whole path (a few per cent
        # of a STORE on 10,000 messages, more with deep mail paths).
        dir_fd = _open_dir(directory) if self._flags else None
        try:
            for uid, change in self._flags.items():
                if uid in self._expunge:
                    continue
                base = by_uid.get(uid)
                if base is None:
                    continue
                if self._rename_flags(uid, base, change, known, letter_of, plans, judge,
                                      dir_fd, listing):
                    changed.append(uid)
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        expunged = []
        for uid in self._expunge:
            base = by_uid.get(uid)
            if base is not None and self._unlink(base):
                expunged.append(uid)
        return CommitResult(
            uidvalidity=uidlist.uidvalidity,
            appended=tuple(appended),
            source_uids=tuple(source_uids) if source_uids else (),
            expunged=tuple(expunged),
            flags_changed=tuple(changed),
            modified=tuple(sorted(self._modified)),
        )

    def _rename_flags(
        self,
        uid: int,
        base: str,
        change: FlagChange,
        known: dict[int, str],
        letter_of: dict[str, str],
        plans: dict,
        judge,
        dir_fd: int,
        listing: dict[str, Entry] | None = None,
    ) -> bool:
        """
        Apply C{change} to the flags the message's file name carries and
        rename the file to carry the result.  The name is the stored
        state: a rename from it succeeds only while the file still has
        it, so a name another process or program changed meanwhile makes
        the rename fail and we read the new name and apply the change to
        it instead (never to a session's copy of the flags).

        @param plans: (change, the file's current letters) -> (the letters
            of its new name, the flags it has, the flags it gets), shared
            by the calls of one commit: a STORE on 10,000 messages has few
            distinct pairs, and this runs once per message next to the
            rename itself.
        @param judge: L{storage.modseq.ModseqLog.judge}'s function when a
            change carries UNCHANGEDSINCE, else C{None}.
        @param listing: a listing made under the lock, if any: its names
            need no check before a no-op.
        @return: whether the flags changed.
        """
        mailbox = self.mailbox
        directory = mailbox.directory
        fresh = listing is not None
        entry = listing.get(base) if fresh else mailbox.known_entry(base) or mailbox.locate(base)
        for _ in range(5):
            if entry is None:
                return False
            # By identity: a STORE queues one change object for every
            # message, and hashing its fields 10,000 times is not free.
            plan = plans.get((id(change), entry.letters))
            if plan is None:
                plan = plans[(id(change), entry.letters)] = _plan(entry, change, known,
                                                                  letter_of)
            ordered, before, after = plan
            since = change.unchangedsince
            if since is not None and judge is not None and judge(uid, before) > since:
                self._modified.append(uid)
                return False
            if before == after:
                # Nothing to write (a file in new/ stays there for the
                # mail readers that look), if the name is still the file's:
                # a name from an old listing may carry flags it lost since.
                if fresh:
                    return False
                src = f"{entry.subdir}/{entry.name}"
                try:
                    os.stat(src, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    entry, fresh = mailbox.locate(base, fresh=True), True
                    continue
                except OSError as e:
                    raise StoreError(f"cannot stat {directory}/{src}: {e.strerror or e}") from e
                return False
            # As MaildirName.with_letters() and .parse() of the new name
            # would give, without parsing what we just built.
            info = f"2,{ordered}{entry.extra}"
            new_name = f"{base}{INFO_SEP}{info}"
            if entry.subdir == "cur" and new_name == entry.name:
                return before != after
            src = f"{entry.subdir}/{entry.name}"
            try:
                os.rename(src, f"cur/{new_name}", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except FileNotFoundError:
                entry, fresh = mailbox.locate(base, fresh=True), True
                continue
            except OSError as e:
                raise StoreError(f"cannot rename {directory}/{src}: {e.strerror or e}") from e
            mailbox.renamed(base, Entry("cur", new_name, base, info, ordered, entry.extra))
            return before != after
        return False

    def _unlink(self, base: str) -> bool:
        mailbox = self.mailbox
        for attempt in range(5):
            entry = mailbox.locate(base, fresh=attempt > 0)
            if entry is None:
                return False
            try:
                os.unlink(entry.path(mailbox.directory))
            except FileNotFoundError:
                continue
            except OSError as e:
                raise StoreError(f"cannot remove {entry.path(mailbox.directory)}: {e}") from e
            return True
        return False


def _plan(entry: Entry, change: FlagChange, known: dict[int, str],
          letter_of: dict[str, str]) -> tuple[str, frozenset[str], frozenset[str]]:
    """
    The letters of C{entry}'s new name after C{change}, with the flags
    the name carries now and the flags it will carry.  Letters we do not
    manage (P, other uppercase letters, lowercase letters with no keyword
    name) are kept; all are written once each, in ASCII order (the
    Maildir spec).
    """
    before = set()
    kept = []
    for c in entry.letters:
        flag = LETTER_FLAGS.get(c)
        if flag is None and "a" <= c <= "z":
            flag = known.get(ord(c) - 97)
        if flag is None:
            kept.append(c)
        else:
            before.add(flag)
    stored = frozenset(before)
    after = change.apply(stored)
    letters = []
    for flag in after:
        letter_ = FLAG_LETTERS.get(flag) or letter_of.get(flag)
        if letter_ is None:
            # Matched case-insensitively, as KeywordsFile.letters_for does.
            lower = flag.lower()
            letter_ = next((l for n, l in letter_of.items() if n.lower() == lower), None)
        if letter_ is None:
            raise StoreError(f"keyword {flag!r} has no letter in {KEYWORDS_NAME}")
        letters.append(letter_)
    return "".join(sorted(set(letters + kept))), stored, after


def _open_dir(directory: str) -> int:
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise StoreError(f"cannot open {directory}: {e.strerror or e}") from e


def _source_record(source: IMailbox, uid: int):
    for record in source.sync().messages:
        if record.uid == uid:
            return record
    raise MessageExpunged(f"message UID {uid} is gone from {source.name!r}")
