# -*- test-case-name: tests.index.test_mailbox_index -*-
"""
The per-node local index: a cache of parsed message data on local disk
(DESIGN.md rule 2).

L{MailboxIndex} keeps, per mailbox and keyed by C{(uidvalidity, uid)}, the
wire-encoded ENVELOPE and BODY/BODYSTRUCTURE, the header block and the
searchable text of the header fields SEARCH names, so a warm FETCH or
SEARCH does not read and parse every message again.  It may be
missing, stale or corrupt at any time and rebuilds itself; UIDs never come
from it.  This package imports nothing from C{storage} or C{imapd}
(STYLE.md item 9).
"""

from index.cleanup import SweepResult, remove_index, sweep
from index.mailbox import FIELDS, SEARCH_FIELDS, MailboxIndex, index_path

__all__ = ["MailboxIndex", "FIELDS", "SEARCH_FIELDS", "index_path", "remove_index", "sweep",
           "SweepResult"]
