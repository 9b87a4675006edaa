# -*- test-case-name: tests.imapd.fts.test_fts_extract -*-
"""
The text the full-text index keeps of one message: exactly the values the
search matcher (L{imapd.search.match}) compares needles with, made by the
same functions and folded by the same L{search_fold}, so a needle is in
the index's text exactly when the matcher would find it.

  - C{header}: the top-level header as TEXT reads it, one value per field
    (L{imapd.search.match.header_text});
  - C{body}: each text part, transfer- and charset-decoded, as BODY and
    TEXT read it (L{imapd.message.Message.decoded_text}), an HTML part
    reduced to its text there (L{imapd.message._html}), for the scan and
    the index alike;
  - C{parts}: the headers of the MIME parts and encapsulated messages,
    which TEXT also reads (an attachment is found by its file name).

Values are folded one by one, as the matcher folds them, and joined by
L{index.fts.SEPARATOR}: a needle never matches across two values.
"""

from __future__ import annotations

from typing import Iterable, Optional

from index.fts import SEPARATOR
from imapd.search.match import header_text
from imapd.sort.collate import search_fold

__all__ = ["document"]


class _TooLarge(Exception):
    pass


def _column(values: Iterable[str], limit: int) -> str:
    out = []
    for value in values:
        if len(value) > limit:
            raise _TooLarge()
        out.append(search_fold(value))
    return SEPARATOR.join(out)


def document(message, max_part_size: int) -> Optional[tuple[str, str, str]]:
    """
    The C{(header, body, parts)} texts of C{message} (an
    L{imapd.message.Message}), or None when one value is longer than
    C{max_part_size} characters or cannot be stored as UTF-8 (such a
    message is read by every search instead).
    """
    try:
        texts = (_column(header_text(message), max_part_size),
                 _column(message.decoded_text(), max_part_size),
                 _column(message.part_header_text(), max_part_size))
    except _TooLarge:
        return None
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate SQLite cannot take
            return None
    return texts
