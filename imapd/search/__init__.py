# -*- test-case-name: tests.imapd.search.test_search_match -*-
"""
SEARCH helpers (RFC 3501 section 6.4.4): the command handler stays thin
and evaluates search programs with these.
"""

from imapd.search.match import (
    KNOWN_CHARSETS, SUPPORTED_CHARSETS, BadCharset, Matcher, SearchItem, compile_search,
    needs_body,
    needs_message,
)

__all__ = [
    "compile_search", "SearchItem", "Matcher", "BadCharset",
    "needs_message", "needs_body", "SUPPORTED_CHARSETS", "KNOWN_CHARSETS",
]
