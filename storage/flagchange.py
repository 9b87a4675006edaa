# -*- test-case-name: tests.storage.test_flagchange -*-
"""
A queued flag change, applied by a store at commit, under its lock, to the
flags the message has in the store at that moment (DESIGN.md "Flag changes
are applied to the stored state under the mailbox lock").

RFC 3501 section 6.4.6: C{+FLAGS} adds the named flags and C{-FLAGS}
removes them; every other flag stays as it is.  A session's copy of the
flags may be stale (another session, process, node or mail program changed
them since it last synced), so writing back "its flags plus or minus the
named ones" would undo those changes: the lost update of issue 13 rule 1.
Stores therefore receive the change itself, never a precomputed result.

RFC 7162 section 3.1.3 UNCHANGEDSINCE rides along: the store compares the
message's MODSEQ with it under the same lock, so that the check and the
write are one step against every writer that takes the lock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FlagChange", "read_with_flags"]

_EMPTY: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FlagChange:
    """
    One message's flag change.

    @ivar replace: the new flags (C{FLAGS}, a full replacement), or
        C{None} for a change relative to the stored flags.
    @ivar add: flags to add (C{+FLAGS}; with C{replace} always empty).
    @ivar remove: flags to remove (C{-FLAGS}; with C{replace} always empty).
    @ivar unchangedsince: RFC 7162 UNCHANGEDSINCE: apply only if the
        message's MODSEQ is at most this; C{None} for no condition.
    """

    replace: frozenset[str] | None = None
    add: frozenset[str] = _EMPTY
    remove: frozenset[str] = _EMPTY
    unchangedsince: int | None = None

    def apply(self, stored: frozenset[str]) -> frozenset[str]:
        """The flags after this change of a message whose flags are C{stored}."""
        if self.replace is not None:
            return self.replace
        # Flag names are case-insensitive (RFC 3501 section 2.3.2): removing
        # $work removes a stored $Work, and adding it keeps the stored one.
        kept = stored
        if self.remove:
            gone = {f.lower() for f in self.remove}
            kept = frozenset(f for f in stored if f.lower() not in gone)
        if self.add:
            have = {f.lower() for f in kept}
            kept = kept | frozenset(f for f in self.add if f.lower() not in have)
        return kept

    def then(self, later: "FlagChange") -> "FlagChange":
        """
        This change followed by C{later} (both queued in one transaction
        for one message), as one change.  The stricter UNCHANGEDSINCE wins.
        """
        since = [s for s in (self.unchangedsince, later.unchangedsince) if s is not None]
        strictest = min(since) if since else None
        if later.replace is not None:
            return FlagChange(later.replace, unchangedsince=strictest)
        if self.replace is not None:
            return FlagChange(later.apply(self.replace), unchangedsince=strictest)
        return FlagChange(None, (self.add - later.remove) | later.add,
                          (self.remove - later.add) | later.remove, strictest)

    def named(self) -> frozenset[str]:
        """Every flag this change may write (for keyword bookkeeping)."""
        return self.replace if self.replace is not None else self.add


def read_with_flags(source, uid: int, known: frozenset[str]) -> tuple[bytes, frozenset[str]]:
    """
    A message of the open mailbox C{source} and the flags it has in the
    store now, read together (a store's C{read_with_flags}), for COPY and
    MOVE (RFC 3501 section 6.4.7: the copy keeps the flags); C{known}, the
    flags of the caller's last sync, only from a store that cannot say.
    """
    reader = getattr(source, "read_with_flags", None)
    if reader is not None:
        return reader(uid)
    return source.read(uid), known
