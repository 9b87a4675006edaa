# -*- test-case-name: tests.imapd.commands.test_quota -*-
"""
The QUOTA extension's commands (RFC 9208, commands and formal syntax):

    getquota      = "GETQUOTA" SP quota-root-name
    getquotaroot  = "GETQUOTAROOT" SP mailbox
    setquota      = "SETQUOTA" SP quota-root-name SP setquota-list
    setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")"
    setquota-resource = resource-name SP number64
    quota-root-name   = astring

SETQUOTA is parsed in full, so that a malformed one is a BAD like any
other syntax error, although the server refuses every well-formed one.
"""

from __future__ import annotations

from dataclasses import dataclass

from imapd.parser.primitives import (
    MODSEQ_MAX, parse_astring, parse_atom, parse_end, parse_mailbox,
    parse_number, parse_paren_list, parse_space,
)
from imapd.parser.types import Command

#: RFC 9051 C{number64}: 63 bits, the same bound as a mod-sequence.
NUMBER64_MAX = MODSEQ_MAX

__all__ = ["GetQuota", "GetQuotaRoot", "SetQuota", "parse_getquota",
           "parse_getquotaroot", "parse_setquota"]


@dataclass(frozen=True, slots=True)
class GetQuota(Command):
    """RFC 9208 GETQUOTA: the usage and limits of one quota root."""
    root: bytes = b""
    name = "GETQUOTA"


@dataclass(frozen=True, slots=True)
class GetQuotaRoot(Command):
    """RFC 9208 GETQUOTAROOT: the quota roots of a mailbox, with their QUOTA."""
    mailbox: bytes = b""
    name = "GETQUOTAROOT"


@dataclass(frozen=True, slots=True)
class SetQuota(Command):
    """
    RFC 9208 SETQUOTA: set the limits of a quota root; C{limits} holds
    (resource name upper case, limit) pairs in client order.
    """
    root: bytes = b""
    limits: tuple[tuple[str, int], ...] = ()
    name = "SETQUOTA"


def _sp(buf: bytes, pos: int) -> int:
    return parse_space(buf, pos)[1]


def parse_getquota(tag: str, buf: bytes, pos: int, ctx) -> Command:
    """GETQUOTA SP quota-root-name."""
    root, pos = parse_astring(buf, _sp(buf, pos))
    parse_end(buf, pos)
    return GetQuota(tag, root)


def parse_getquotaroot(tag: str, buf: bytes, pos: int, ctx) -> Command:
    """GETQUOTAROOT SP mailbox."""
    mailbox, pos = parse_mailbox(buf, _sp(buf, pos))
    parse_end(buf, pos)
    return GetQuotaRoot(tag, mailbox)


def _resource(buf: bytes, pos: int) -> tuple[tuple[str, int], int]:
    atom, pos = parse_atom(buf, pos)
    limit, pos = parse_number(buf, _sp(buf, pos), NUMBER64_MAX)
    return (atom.upper().decode("ascii"), limit), pos


def parse_setquota(tag: str, buf: bytes, pos: int, ctx) -> Command:
    """SETQUOTA SP quota-root-name SP setquota-list."""
    root, pos = parse_astring(buf, _sp(buf, pos))
    limits, pos = parse_paren_list(buf, _sp(buf, pos), _resource)
    parse_end(buf, pos)
    return SetQuota(tag, root, tuple(limits))
