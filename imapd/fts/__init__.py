# -*- test-case-name: tests.imapd.fts.test_fts_search -*-
"""
Full-text search: SEARCH BODY and TEXT (RFC 3501 section 6.4.4) answered
from a per-node index (L{index.fts.FtsIndex}, SQLite FTS5 with trigrams)
instead of reading every message.

  - L{imapd.fts.extract}: what a message's index row holds, made by the
    search matcher's own functions (L{imapd.search.match}) so that index
    and scan agree;
  - L{imapd.fts.query}: one SEARCH's view of the index, which the matcher
    and the set evaluation (L{imapd.search.sets}) ask;
  - L{imapd.fts.indexer}: keeping the index current, in the storage pool,
    after the command that added mail has answered;
  - L{imapd.fts.admin}: C{imapd-admin fts rebuild|status}.

The index is a filter with an exact answer only where it can give one: a
message it does not have (new, too large, index lost or corrupt) and a
needle it cannot answer (fewer than 3 characters) are read and matched as
before, so the answer is the same with the index on, off or half built.
"""

from dataclasses import dataclass

__all__ = ["FtsSettings", "DEFAULT", "settings_from"]


@dataclass(frozen=True)
class FtsSettings:
    """
    C{[fts]} as the server uses it.

    @ivar enabled: use and keep the index.
    @ivar max_part_size: the largest decoded text (in characters) of one
        part or header the index takes; a message with a larger one is
        not indexed and is read by every search that needs its text.
    @ivar max_message_size: the largest message (octets) the indexer
        reads; a larger one is recorded as not indexed without reading it.
    """

    enabled: bool = True
    max_part_size: int = 10 * 1024 * 1024
    max_message_size: int = 32 * 1024 * 1024


#: The settings of a server configured without an C{[fts]} table.
DEFAULT = FtsSettings()


def settings_from(config) -> FtsSettings:
    """The settings of a loaded configuration's C{[fts]} table."""
    section = config.fts
    return FtsSettings(enabled=section.enabled, max_part_size=section.max_part_size,
                       max_message_size=section.max_message_size)
