# -*- test-case-name: tests.imapd.test_errors -*-
"""
The protocol layer's one exception hierarchy, and the one place where
errors become NO, BAD or BYE (L{to_response}).

Handlers raise L{BadCommand} for client syntax errors, L{CommandFailed} for
things the client asked for that cannot be done, L{ConnectionClosing} to
end the session.  Errors from the stores (L{storage.errors}) and locks are
translated here too, so that handlers can let them propagate.  Anything
else is a server bug: the client gets C{NO [SERVERBUG]} and the log gets
the traceback, never the client (RFC 5530 section 3).
"""

from __future__ import annotations

from typing import Optional

from storage import errors as serr

__all__ = [
    "IMAPError",
    "BadCommand",
    "CommandFailed",
    "ConnectionClosing",
    "to_response",
]


class IMAPError(Exception):
    """Base of the errors the protocol layer answers by itself."""

    status = b"NO"

    def __init__(self, text: str, code: Optional[str] = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class BadCommand(IMAPError):
    """RFC 3501 section 7.1.3: the command is not valid (syntax, state)."""

    status = b"BAD"


class CommandFailed(IMAPError):
    """RFC 3501 section 7.1.2: a valid command that could not be done."""

    status = b"NO"


class ConnectionClosing(IMAPError):
    """RFC 3501 section 7.1.5: BYE, then the server closes the connection."""

    status = b"BYE"


# RFC 5530 response codes for store errors.  TRYCREATE replaces NONEXISTENT
# where RFC 3501 requires it (APPEND and COPY targets): see L{to_response}.
_STORE_CODES: tuple[tuple[type, str], ...] = (
    (serr.MailboxNotFound, "NONEXISTENT"),
    (serr.MailboxExists, "ALREADYEXISTS"),
    (serr.InvalidMailboxName, "CANNOT"),
    (serr.MailboxReadOnly, "READ-ONLY"),
    (serr.MessageExpunged, "EXPUNGEISSUED"),
    (serr.BrokenMailbox, "CORRUPTION"),
    (serr.LockUnavailable, "INUSE"),
    (serr.StoreError, "UNAVAILABLE"),
)


def to_response(
    exc: BaseException, trycreate: bool = False
) -> tuple[bytes, Optional[str], str]:
    """
    Map an exception to C{(status, code, text)} for the tagged response.

    @param trycreate: the command's target mailbox is missing and RFC 3501
        (APPEND 6.3.11, COPY 6.4.7) wants C{[TRYCREATE]}.
    @return: status is C{b"NO"}, C{b"BAD"} or C{b"BYE"}; C{code} may be None
        and C{SERVERBUG} means the caller must log the exception.
    """
    if isinstance(exc, IMAPError):
        return exc.status, exc.code, exc.text
    if isinstance(exc, serr.MailboxNotFound) and trycreate:
        return b"NO", "TRYCREATE", str(exc) or "Mailbox does not exist"
    for kind, code in _STORE_CODES:
        if isinstance(exc, kind):
            return b"NO", code, str(exc) or kind.__name__
    return b"NO", "SERVERBUG", "Internal error occurred; refer to the server log"
