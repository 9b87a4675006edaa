# -*- test-case-name: tests.imapd.parser.test_parser_receiver -*-
"""
The IMAP command parser: bytes in, typed events out, no I/O.

    >>> from imapd.parser import Parser, ParserLimits
    >>> p = Parser(ParserLimits(max_literal=8192))
    >>> p.feed(b"a1 LOGIN {4}\\r\\n")
    [ContinuationNeeded(size=4)]
    >>> p.feed(b"fred secret\\r\\n")
    [Login(tag='a1', user=b'fred', password=b'secret')]

L{Parser} (in L{imapd.parser.receiver}) assembles lines and literals
incrementally and enforces L{ParserLimits}; the grammar lives in one
module per piece (L{primitives}, L{sequence}, L{fetchatt}, L{searchkey},
L{datetime_}) and L{commands} holds the command-name table.  The events
are the dataclasses of L{imapd.parser.types}.
"""

from imapd.parser.receiver import Parser, ParserLimits
from imapd.parser.types import *  # noqa: F401,F403 - the public contract
from imapd.parser.types import __all__ as _types_all

__all__ = ["Parser", "ParserLimits", *_types_all]
