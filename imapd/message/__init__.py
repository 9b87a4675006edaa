# -*- test-case-name: tests.imapd.message -*-
"""
The message-structure library behind FETCH and SEARCH: header and body
sections, ENVELOPE, BODY/BODYSTRUCTURE, decoded headers and text.

Messages are parsed lazily with byte offsets; see L{Message}.
"""

from imapd.message._message import Message

__all__ = ["Message"]
