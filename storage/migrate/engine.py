# -*- test-case-name: tests.storage.migrate.test_migrate -*-
"""
One migration run: every mailbox of the source, then the subscriptions.

The target is brought to what the source says, and nothing else is
remembered between runs, so a run is idempotent (a second one finds
nothing to do and writes nothing) and resumable (a run killed anywhere is
completed by the next; see L{storage.maildir.restore} for the one window
a kill can leave in a Maildir, and how the next run closes it; an mbox
append a kill tore is repaired by the mbox store's journal before the
target is looked at).  Per mailbox:

 1. create it in the target if missing;
 2. place the source's messages the target does not list, in batches,
    under their UIDs, with the source's UIDVALIDITY and UIDNEXT (and its
    modseq log while the target mailbox is empty);
 3. compare what both hold under each UID: a different size means the two
    are not the same message (the source was renumbered since an earlier
    run) and stops the run with an error; different flags are set
    (the source changed them since an earlier run); a UID below the
    source's UIDNEXT that the source no longer has is expunged;
 4. when both now hold the same messages with the same flags, the
    source's modseq log (if it has one: this server served it) becomes
    the target's, whatever a killed run or step 3 wrote into it: the
    MODSEQs clients were given stay true (RFC 7162).

The source is only read (L{storage.migrate.sources}).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from storage.crlf import crlf_size
from storage.errors import StoreError
from storage.location import parse_location
from storage.migrate.sources import MaildirSource, MboxSource, SourceMailbox

__all__ = ["MigrationError", "MailboxResult", "MigrationReport", "migrate", "open_source",
           "open_target", "BATCH"]

#: Messages read and written per placement (and per uidlist write).
BATCH = 500


class MigrationError(StoreError):
    """The migration cannot go on; the message says why and what to do."""


@dataclass
class MailboxResult:
    """What one mailbox's migration did."""

    name: str
    kind: str
    uidvalidity: int
    uidnext: int
    messages: int
    copied: int = 0
    flags_updated: int = 0
    expunged: int = 0
    #: UIDs the target had given up (expunged there) and does not take back.
    refused: tuple[int, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.copied or self.flags_updated or self.expunged)


@dataclass
class MigrationReport:
    """The whole run."""

    mailboxes: list[MailboxResult] = field(default_factory=list)
    subscribed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def copied(self) -> int:
        return sum(m.copied for m in self.mailboxes)

    @property
    def changed(self) -> bool:
        return bool(self.subscribed) or any(m.changed for m in self.mailboxes)


def open_source(spec: str, user: str, home: str | None):
    """The source reader for a C{mail_location} string."""
    location = parse_location(spec, user, home)
    if location.driver == "mbox":
        return MboxSource(location, user)
    if location.driver == "maildir":
        return MaildirSource(location, user)
    raise MigrationError(f"cannot migrate from {location.driver!r} locations "
                         f"(supported: mbox, maildir)")


def open_target(spec: str, user: str, home: str | None):
    """The target writer for a C{mail_location} string (its root is created)."""
    from storage.migrate.targets import MaildirTarget, MboxTarget
    from storage.registry import open_store

    location = parse_location(spec, user, home)
    if location.driver not in ("mbox", "maildir"):
        raise MigrationError(f"cannot migrate to {location.driver!r} locations "
                             f"(supported: mbox, maildir)")
    store = open_store(location, user, home)
    return (MboxTarget if location.driver == "mbox" else MaildirTarget)(store)


def migrate(source, target, batch: int = BATCH,
            progress: Callable[[MailboxResult], None] | None = None) -> MigrationReport:
    """
    Migrate every mailbox of C{source} (L{open_source}) into C{target}
    (L{open_target}), then the subscriptions.

    @param progress: called with each mailbox's result when it is done.
    @raises MigrationError: a target mailbox holds other mail than the
        source under the same UIDVALIDITY and UID.
    @raises StoreError: a store could not be read or written.
    """
    started = time.monotonic()
    report = MigrationReport()
    try:
        for name in source.mailboxes():
            result = _mailbox(source.open(name), target, batch)
            report.mailboxes.append(result)
            if progress is not None:
                progress(result)
    finally:
        target.close()
    have = set(target.subscriptions())
    for name in source.subscriptions():
        if name not in have:
            target.subscribe(name)
            have.add(name)
            report.subscribed.append(name)
    report.seconds = time.monotonic() - started
    return report


def _mailbox(src: SourceMailbox, target, batch: int) -> MailboxResult:
    name = src.name
    target.ensure(name)
    uidvalidity, uidnext, listed = target.known(name)
    if not src.uidvalidity_stored and listed:
        # The source keeps no UIDVALIDITY (this run made one up): the one
        # an earlier run gave the target's messages stands, or no run could
        # resume.  (An empty target takes the source's, as always.)
        src = dataclasses.replace(src, uidvalidity=uidvalidity)
    result = MailboxResult(name, src.kind, src.uidvalidity, src.uidnext, len(src.messages))
    if listed and uidvalidity != src.uidvalidity:
        raise MigrationError(
            f"{name}: the target holds mail under UIDVALIDITY {uidvalidity}, the source has "
            f"{src.uidvalidity}: the target is not a copy of this source (remove the target "
            f"mailbox to start again)")
    missing = [m for m in src.messages if m.uid not in listed]
    refused: list[int] = []
    if missing or uidvalidity != src.uidvalidity or uidnext < src.uidnext:
        # UIDNEXT is raised to the source's with the last batch only: the
        # earlier batches' UIDs must stay above the target's next UID.
        starts = range(0, max(len(missing), 1), batch)
        for i in starts:
            placed, no = target.place(name, src, missing[i:i + batch], last=i == starts[-1])
            result.copied += len(placed)
            refused += no
    snapshot = target.records(name)
    by_uid = {r.uid: r for r in snapshot.messages}
    # Placement refuses them, or the uidlist still lists a line whose file
    # was expunged in the target: either way the target gave the UID up.
    result.refused = tuple(sorted(set(refused) | {m.uid for m in src.messages
                                                  if m.uid not in by_uid}))
    flags: dict[int, frozenset[str]] = {}
    for m in src.messages:
        record = by_uid.get(m.uid)
        if record is None:
            continue
        size = m.size if m.size is not None else crlf_size(m.read())
        if record.size != size:
            raise MigrationError(
                f"{name}: UID {m.uid} is another message in the target ({record.size} "
                f"octets) than in the source ({size} octets): the source was renumbered "
                f"since the last run; remove the target mailbox to start again")
        if record.flags != m.flags:
            flags[m.uid] = m.flags
    present = {m.uid for m in src.messages}
    gone = [uid for uid in by_uid if uid < src.uidnext and uid not in present]
    if flags or gone:
        target.change(name, flags, gone)
    result.flags_updated, result.expunged = len(flags), len(gone)
    if src.modseq_log is not None and not result.refused and set(by_uid) - set(gone) == present:
        # The same messages with the same flags: the source's MODSEQs are
        # true of the target too.  Its own log may hold what a killed run
        # or this run's flag changes wrote: the source's replaces it.
        target.carry_modseqs(name, src.modseq_log)
    return result


def same_place(a: str, b: str) -> bool:
    """Whether two paths name the same directory or file (both existing)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
