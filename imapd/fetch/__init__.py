# -*- test-case-name: tests.imapd.fetch.test_fetch_render -*-
"""
FETCH helpers (RFC 3501 sections 6.4.5 and 7.4.2, RFC 3516): the command
handler stays thin and calls these to render responses.
"""

from imapd.fetch.render import (
    ExpungedMessage, FetchRenderer, UnknownCTE, compile_fetch, expunged_record, format_flags,
    format_internaldate, item_name, needs_message, render_fetch, sets_seen,
)

__all__ = [
    "render_fetch", "compile_fetch", "FetchRenderer", "needs_message",
    "sets_seen", "format_internaldate", "format_flags", "item_name",
    "UnknownCTE", "ExpungedMessage", "expunged_record",
]
