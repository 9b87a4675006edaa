# -*- test-case-name: tests.storage.mbox.test_mbox_repair -*-
"""
Repairing an mbox whose C{X-IMAPbase} or C{X-UID} fields were damaged,
without renumbering (the mbox half of C{imapd-admin force-resync}).

The reader (L{storage.mbox.state}) trusts an C{X-UID} only below the last
UID C{X-IMAPbase} records, as Dovecot does.  So an C{X-IMAPbase} that no
longer reads (garbled digits, a hand edit, or the first message deleted
by a mail program that does not know the field belongs to the folder)
makes every C{X-UID} in the file worthless to it: every message gets a
new UID under a new UIDVALIDITY at the next write, and every client
downloads the folder again.  The repair reads what is left instead:

 - UIDVALIDITY: the first word of the damaged field if it still reads,
   else the one the caller gives (the sysadmin's), else the modseq log's
   (L{storage.modseq.ModseqLog.uids_given}, in the shared store); with
   none of them the repair refuses and writes nothing;
 - UIDs: the readable C{X-UID}s that grow along the file keep their
   values (the longest such run, so one stray C{X-UID} from outside mail
   costs one message, not the rest of the file); the other messages get
   UIDs after every UID given, as the reader gives new mail;
 - the last UID: the largest of the damaged field's second word, the
   largest kept UID and the modseq log's highest UID (expunged UIDs stay
   given); with neither the word nor a modseq log of this UIDVALIDITY,
   L{storage.base.UNKNOWN_NEXT_GAP} UIDs after the largest kept one are
   left unused.

Run it before users log in again: a session's sync of the damaged file
numbers it as new (as Dovecot would), under a UIDVALIDITY of its own,
and starts the modseq log again under that one, so the log no longer
remembers the old UIDVALIDITY and the UIDs expunged from the end; once a
session has written the new numbers into the file there is nothing left
to repair.

When C{X-IMAPbase} reads, the reader's UIDs are what clients have seen
already, so they are kept exactly and only written down.  The file is
rewritten whole (L{storage.mbox.rewrite.render_all}) under the write
lock chain, by temp file and rename or in place with the journal, as
every rewrite is.
"""

from __future__ import annotations

import dataclasses
import os
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime

from storage.base import UNKNOWN_NEXT_GAP
from storage.errors import StoreError
from storage.mbox.headers import read_meta
from storage.mbox.rewrite import Changes, _read_all, render_all, replace
from storage.mbox.state import MboxState, parse

__all__ = ["MboxRepair", "plan_repair", "repair_mbox"]


@dataclass(frozen=True)
class MboxRepair:
    """
    What the repair found and (L{repair_mbox}) wrote.

    @ivar state: the state to write, or C{None} when the file is sound.
    @ivar renumbered: how many messages get a new UID (their C{X-UID}
        was unreadable, repeated or out of order).
    """

    state: MboxState | None
    uidvalidity: int
    last_uid: int
    kept: int
    renumbered: int
    problems: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.state is not None


def _base_words(data: bytes, meta) -> tuple[str, list[str]] | None:
    """The name and words of the first C{X-IMAPbase}/C{X-IMAP} field, read or not."""
    for name in (b"x-imapbase", b"x-imap"):
        fields = meta.fields.get(name)
        if fields:
            value = fields[0].value.replace(b"\0", b" ")
            return name.decode(), value.decode("utf-8", "replace").split()
    return None


def _number(word: str | None) -> int | None:
    if word is None or not word.isdigit():
        return None
    value = int(word)
    return value if 0 < value < 2**32 else None


def _longest_growing(uids: list[int | None]) -> set[int]:
    """
    The positions of the longest strictly growing run of the non-None
    values (patience sorting, O(n log n)); of equal UIDs the first keeps it.
    """
    tails: list[int] = []   # smallest last UID of a run of each length
    at: list[int] = []      # its position
    before: dict[int, int] = {}
    for i, uid in enumerate(uids):
        if uid is None:
            continue
        k = bisect_left(tails, uid)
        if k < len(tails) and tails[k] == uid:
            continue  # a repeat: the first message with the UID keeps it
        if k:
            before[i] = at[k - 1]
        if k == len(tails):
            tails.append(uid)
            at.append(i)
        else:
            tails[k], at[k] = uid, i
    keep = set()
    i = at[-1] if at else None
    while i is not None:
        keep.add(i)
        i = before.get(i)
    return keep


def plan_repair(data: bytes, default_uidvalidity: int, fallback_date: datetime | None = None,
                uidvalidity: int | None = None,
                witness: tuple[int, int] | None = None) -> MboxRepair:
    """
    The repair of the mbox content C{data} (no I/O).

    @param uidvalidity: the sysadmin's, used only when the file's is unreadable.
    @param witness: the modseq log's C{(uidvalidity, highest UID)}, or None.
    @raises StoreError: the UIDVALIDITY cannot be told.
    """
    state = parse(data, default_uidvalidity, fallback_date)
    problems = list(state.problems)
    entries = list(state.entries)
    metas = [read_meta(data, e.raw) for e in entries]
    if state.base_in is not None:
        # The reader's UIDs stand (clients have them); store them if some
        # are only computed.
        unstored = sum(1 for e in entries if not e.stored_uid)
        return MboxRepair(state if unstored else None, state.uidvalidity, state.last_uid,
                          len(entries) - unstored, unstored, tuple(problems))
    pseudo = state.pseudo
    words: list[str] = []
    if entries:
        found = _base_words(data, metas[0])
        if found is not None:
            name, words = found
            problems.append(f"{name} field unreadable: {' '.join(words)[:60]!r}")
            if name == "x-imap" and pseudo is None:
                # UW's pseudo message with a damaged X-IMAP: still the
                # pseudo message, never shown as mail.
                pseudo = entries.pop(0).raw
                metas.pop(0)
    xuids = [m.uid for m in metas]
    if not words and all(u is None for u in xuids):
        # A spool no IMAP server has numbered yet: nothing to keep.
        return MboxRepair(None, state.uidvalidity, state.last_uid, 0, 0, tuple(problems))
    if not words:
        problems.append("no X-IMAPbase on the first message (deleted by another mail program?)")
    chosen = _number(words[0] if words else None)
    if chosen is None:
        chosen = uidvalidity or (witness[0] if witness else None)
        if chosen is None:
            raise StoreError(
                "the UIDVALIDITY is unreadable and the mailbox has no modseq log that "
                "remembers it; give the one clients know (--uidvalidity), nothing was changed")
        problems.append(f"UIDVALIDITY {chosen} {'given' if uidvalidity else 'from the modseq log'}")
    keep = _longest_growing(xuids)
    stored_last = _number(words[1] if len(words) > 1 else None)
    last = max([stored_last or 0] + [xuids[i] for i in keep])
    if witness is not None and witness[0] == chosen:
        last = max(last, witness[1])
    elif stored_last is None:
        last += UNKNOWN_NEXT_GAP
        problems.append(f"the last UID given is unknown: {last}, leaving {UNKNOWN_NEXT_GAP} "
                        f"unused so that no expunged UID is given again")
    renumbered = 0
    fixed = []
    for i, e in enumerate(entries):
        if i in keep:
            fixed.append(dataclasses.replace(e, uid=xuids[i], stored_uid=False))
            continue
        last += 1
        renumbered += 1
        problems.append(f"message {i + 1} ({e.raw.from_line[:50]!r}): X-UID "
                        f"{'unreadable' if xuids[i] is None else f'{xuids[i]} out of order'}, "
                        f"new UID {last}")
        fixed.append(dataclasses.replace(e, uid=last, stored_uid=False))
    keywords = tuple(dict.fromkeys(words[2:])) if len(words) > 2 else state.keywords
    new = dataclasses.replace(state, uidvalidity=chosen, last_uid=last, stored_last_uid=None,
                              entries=tuple(fixed), pseudo=pseudo, keywords=keywords,
                              stored_uidvalidity=True)
    return MboxRepair(new, chosen, last, len(keep), renumbered, tuple(problems))


def repair_mbox(mailbox, uidvalidity: int | None = None) -> MboxRepair:
    """
    Repair the file of C{mailbox} (an L{storage.mbox.mailbox.MboxMailbox})
    under its write lock chain; see the module docstring.

    @raises StoreError: see L{plan_repair}; or the file cannot be written.
    """
    from storage.mbox.mailbox import _acquire, _default_uidvalidity, _let_go_held, _mtime

    path = mailbox.path
    witness = mailbox.modseqs.uids_given() if mailbox.modseqs is not None else None
    _let_go_held(path)
    chain = mailbox.locks.chain(path, write=True)
    _acquire(chain, path, mailbox.locks.timeout)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            if mailbox.journal.pending():
                mailbox._recover(fd)
            st = os.fstat(fd)
            data = _read_all(fd, st.st_size)
            repair = plan_repair(data, _default_uidvalidity(st), _mtime(st), uidvalidity,
                                 witness)
            if repair.state is not None:
                state = repair.state
                flags = {e.uid: (e.flags, e.old) for e in state.entries}
                content = render_all(data, state, Changes(), flags, (), state.last_uid)
                try:
                    replace(fd, path, data, content, mailbox.fsync, mailbox.journal,
                            mailbox.in_place)
                except OSError as e:
                    raise StoreError(f"cannot write {path}: {e.strerror or e}") from e
            return repair
        finally:
            os.close(fd)
    finally:
        chain.release()

