# -*- test-case-name: tests.imapd.commands.test_context_search -*-
"""
CANCELUPDATE (RFC 5267 section 4.3.5): stop the updates of searches that
used C{RETURN (UPDATE)}.  The searching commands themselves are SEARCH and
SORT (L{imapd.commands.search}, L{imapd.commands.sort}); the results they
keep up to date live in L{imapd.search.updates}.

Example::

    C: B04 CANCELUPDATE "B01"
    S: B04 OK CANCELUPDATE completed
"""

from __future__ import annotations

from imapd.errors import CommandFailed
from imapd.parser.context import CancelUpdate

__all__ = ["handle_cancelupdate"]


async def handle_cancelupdate(session, cmd: CancelUpdate):
    """
    RFC 5267 section 4.3.5.  A tag that names no result being updated is
    a NO and cancels nothing (Dovecot 2.3 says C{NO Unknown tag} too), so
    that a client's typo does not pass for success.
    """
    contexts = session.selected.contexts
    known = contexts.by_tag if contexts is not None else {}
    unknown = [t for t in cmd.tags if t not in known]
    if unknown:
        raise CommandFailed(f"Unknown tag {unknown[0]}: no search is being updated under it")
    for tag in cmd.tags:
        known.pop(tag, None)
