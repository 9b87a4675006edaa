# -*- test-case-name: tests.imapd.sort -*-
"""
SORT and THREAD (RFC 5256, RFC 5957 SORT=DISPLAY, Dovecot's THREAD=REFS).

  - L{collate}: the C{i;unicode-casemap} comparator (RFC 5051) that
    I18NLEVEL=1 (RFC 5255) asks for, plus the folding SEARCH uses;
  - L{subject}: base-subject extraction (RFC 5256 section 2.1);
  - L{keys}: what SORT and THREAD need from each message's header, read
    once and kept in a process-wide LRU cache, and the SORT ordering;
  - L{thread}: the ORDEREDSUBJECT, REFERENCES and REFS algorithms and the
    C{* THREAD} response syntax;
  - L{results}: whole answers reused while the matching messages are the
    same (webmail repeats its SORT on every page).
"""

from imapd.sort.collate import search_fold, unicode_casemap
from imapd.sort.keys import (
    SORT_KEYS, HeaderKeys, SortItem, header_keys, load_items, sort_items,
)
from imapd.sort.subject import base_subject
from imapd.sort.thread import ALGORITHMS, format_threads, thread_items

__all__ = [
    "unicode_casemap", "search_fold", "base_subject", "HeaderKeys",
    "SortItem", "header_keys", "load_items", "sort_items", "SORT_KEYS",
    "ALGORITHMS", "thread_items", "format_threads",
]
