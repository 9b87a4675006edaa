# -*- test-case-name: tests.imapd.commands.test_thread -*-
"""
THREAD and UID THREAD (RFC 5256 section 4; REFS after Dovecot).

Command: C{THREAD algorithm charset search-keys}.
Example: C{a1 THREAD REFERENCES UTF-8 ALL} answers
C{* THREAD (1 2)(3 (4)(5))}.
"""

from __future__ import annotations

from imapd.errors import BadCommand
from imapd.parser.sort import Thread

__all__ = ["handle_thread", "run_thread"]


def run_thread(view, cmd: Thread, index=None) -> bytes:
    """
    Blocking: the C{* THREAD} line for the matching messages.

    @param index: the mailbox's L{imapd.cache.SortCache}, or None.
    """
    from imapd.commands.sort import sorted_search
    from imapd.sort import format_threads, load_items, thread_items
    from imapd.sort.keys import THREAD_GROUPS, mailbox_identity
    from imapd.sort.results import cached_answer

    hits = sorted_search(view, cmd)

    def compute() -> bytes:
        roots = thread_items(cmd.algorithm, load_items(view, hits, THREAD_GROUPS, index))
        return format_threads(roots, cmd.uid)
    return cached_answer(
        (mailbox_identity(view), "THREAD", cmd.algorithm, cmd.uid),
        hits, compute)


async def handle_thread(session, cmd: Thread):
    """RFC 5256 section 4: an algorithm we don't advertise is a BAD."""
    from imapd.sort import ALGORITHMS

    if cmd.algorithm not in ALGORITHMS:
        raise BadCommand("Unknown thread algorithm %s" % cmd.algorithm[:32])
    from imapd.cache import SortCache

    view = session.selected
    line = await session.run(run_thread, view, cmd,
                             SortCache.for_account(session.account, view.mailbox))
    session.send(line)
