# -*- test-case-name: tests.imapd.test_logtext -*-
"""
Client-controlled text in log lines (issue 18 item 9).

A user name, an ID field, a tag or a mailbox name can hold CR, LF, ESC
or any other control character.  Written raw, a CR-LF forges a log line
that a log reader or a fail2ban filter believes, and ESC sequences
rewrite the terminal of whoever reads the log.  Every log call that
includes client data passes it through L{log_safe}; L{escaping_observer}
applies the same to every event the daemon logs, as a second line of
defence for what a call site forgot (a path made from a mailbox name, an
exception whose text quotes the client), and to the traceback of a logged
failure: its exception's text is escaped whole (a CR-LF in it is not one
of the traceback's own line ends), every other line's controls too.
"""

from __future__ import annotations

import os
import re
from typing import Any

from twisted.python.failure import Failure

__all__ = ["log_safe", "escaping_observer", "escape_traceback", "quiet_predicate",
           "event_text"]

#: C0 controls, DEL, C1 controls and the Unicode line and paragraph
#: separators: everything that can end a line or drive a terminal.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def log_safe(value: Any) -> Any:
    """
    C{value} with every control character written as C{\\xNN}
    (C{\\uNNNN} for the Unicode separators).  Text and bytes (decoded as
    UTF-8, undecodable octets as C{\\xNN} too) come back as text; C{None}
    and numbers unchanged; anything else as its escaped C{str()}.
    Idempotent: escaped text has no control characters left.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "backslashreplace")
    elif not isinstance(value, str):
        value = str(value)
    return _UNSAFE.sub(_escape, value)


class _EscapedFailure(Failure):
    """
    A logged L{Failure} whose traceback text comes out escaped: log
    observers write C{getTraceback()} as it is.  Made by copying the
    original's attributes, never by calling C{Failure()}, which would
    capture the current exception instead.
    """

    def getTraceback(self, *args: Any, **kwargs: Any) -> str:
        return escape_traceback(super().getTraceback(*args, **kwargs), self.value)


def escape_traceback(text: str, value: object = None) -> str:
    """
    A formatted traceback with every control character escaped but the
    line ends between its lines.  The text of the exception C{value}
    (which may quote the client, and hold line ends of its own) is
    escaped whole first, so that it stays on its one line.
    """
    if value is not None:
        try:
            message = str(value)
        except Exception:
            message = ""
        safe = log_safe(message)
        if message and safe != message:
            text = text.replace(message, safe)
    return "\n".join(log_safe(line) for line in text.split("\n"))


def _escaped_failure(failure: Failure) -> Failure:
    escaped = _EscapedFailure.__new__(_EscapedFailure)
    escaped.__dict__.update(failure.__dict__)
    return escaped


def escaping_observer(observer):
    """
    Wrap a Twisted log observer so that the text, path and exception
    values of every event reach it escaped (L{log_safe}), and the
    traceback of its failure too (L{escape_traceback}).  The event's
    other C{log_*} keys (format, level) pass unchanged.
    """

    def observe(event: dict) -> None:
        clean = None
        failure = event.get("log_failure")
        if isinstance(failure, Failure) and not isinstance(failure, _EscapedFailure):
            clean = dict(event)
            clean["log_failure"] = _escaped_failure(failure)
        for key, value in event.items():
            if key.startswith("log_") or not isinstance(
                    value, (str, os.PathLike, BaseException)):
                continue
            safe = log_safe(os.fspath(value) if isinstance(value, os.PathLike) else value)
            if safe != value:
                if clean is None:
                    clean = dict(event)
                clean[key] = safe
        observer(event if clean is None else clean)

    return observe


#: Twisted's own lines at every listener start and stop ("IMAPFactory
#: starting on 1143", "(TCP Port 1143 Closed)", "Starting factory <...>"):
#: they say nothing a sysadmin needs (the daemon logs its listeners once)
#: and repeat in every login process (issue 16 item 8).
_NOISE = re.compile(r"^(\S+( \(TLS\))? starting on (\S+|'.*')|\((TCP |UNIX |UDP )?Port \S+ Closed\)"
                    r"|(Starting|Stopping) factory <.*>)$")


#: Namespaces of this project's own events: not noise, so not formatted
#: by L{quiet_predicate} (the observer formats them anyway; a delivery's
#: log line was formatted twice in each process it crossed) -- except
#: Twisted's factory lines, which take the namespace of the factory's
#: class, ours included.
_OURS = ("imapd", "storage", "locking", "index", "conf")
_FACTORY_LINES = ("Starting factory", "Stopping factory")


def quiet_predicate():
    """
    A log filter predicate (L{twisted.logger.ILogFilterPredicate}) that
    drops Twisted's listener and factory start and stop lines.
    """
    from twisted.logger import PredicateResult, formatEvent

    def predicate(event: dict):
        level = event.get("log_level")
        if level is None or level.name not in ("info", "debug"):
            return PredicateResult.maybe
        fmt = event.get("log_format")
        if (isinstance(fmt, str) and not fmt.startswith(_FACTORY_LINES)
                and str(event.get("log_namespace") or "").startswith(_OURS)):
            return PredicateResult.maybe
        try:
            text = formatEvent(event)
        except Exception:
            return PredicateResult.maybe
        return PredicateResult.no if _NOISE.match(text) else PredicateResult.maybe

    return predicate


def event_text(event: dict) -> str:
    """An event's message, then its failure's traceback if it has one."""
    from twisted.logger import formatEvent

    text = formatEvent(event)
    failure = event.get("log_failure")
    if failure is not None:
        try:
            text += "\n" + failure.getTraceback()
        except Exception:
            text += f"\n{failure!r}"
    return text
