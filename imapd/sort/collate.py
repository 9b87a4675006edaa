# -*- test-case-name: tests.imapd.sort.test_sort_collate -*-
"""
Comparators for I18NLEVEL=1 (RFC 5255 section 4.3).

RFC 5051 defines C{i;unicode-casemap}: map every character through its
(simple) titlecase mapping, decompose the result (NFKD), and compare the
UTF-8 octets.  Python compares C{str} by code point, which orders exactly
as UTF-8 octets do, so L{unicode_casemap} returns a C{str} that can be
compared (and used as a sort key or dictionary key) directly.

Approximation, documented as RFC 5051 section 2 allows: the titlecase
mapping is Python's C{str.title()} of one character when that yields one
character (the UnicodeData simple mapping), else the character itself;
NFKD is C{unicodedata.normalize}, applied before the mapping too so that
ligatures such as U+FB01 compare equal to their letters, as Dovecot's
decomposed titlecase does.  Titlecase, not lowercase, is what makes
the ordering of letters against C{[\\]^_`} the same as Dovecot's.

SEARCH needs substring matching rather than ordering, and there full case
folding (C{str.casefold}, which maps "\\u00df" to "ss") finds more of what
users mean; L{search_fold} is casefold followed by NFKD.
"""

from __future__ import annotations

import unicodedata

__all__ = ["unicode_casemap", "search_fold"]

_TITLE: dict[str, str] = {}


def _title(ch: str) -> str:
    mapped = _TITLE.get(ch)
    if mapped is None:
        mapped = ch.title()
        if len(mapped) != 1:
            # Full mappings (U+00DF -> "Ss") are not the simple mapping
            # RFC 5051 uses; keep the character.
            mapped = ch
        if len(_TITLE) < 65536:
            _TITLE[ch] = mapped
    return mapped


def unicode_casemap(text: str) -> str:
    """
    The RFC 5051 C{i;unicode-casemap} canonical form of C{text}: two
    strings are equal under the comparator iff their forms are equal, and
    order as their forms order.
    """
    if text.isascii():
        # Titlecase of ASCII is upper case; NFKD changes nothing.
        return text.upper()
    # Decompose first as well, so that compatibility characters whose
    # parts have case (U+FB01 "fi") are titlecased part by part.
    text = unicodedata.normalize("NFKD", text)
    mapped = "".join([_title(ch) for ch in text])
    return unicodedata.normalize("NFKD", mapped)


def search_fold(text: str) -> str:
    """
    The form SEARCH compares substrings in: case-folded and NFKD
    decomposed, so C{"STRASSE"} finds C{"Stra\\u00dfe"} and a precomposed
    C{"\\u00e9"} finds a decomposed one.
    """
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKD", text.casefold())
