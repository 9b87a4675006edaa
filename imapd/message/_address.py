# -*- test-case-name: tests.imapd.message.test_message_envelope -*-
"""
Tolerant RFC 5322 address-list parsing into RFC 3501 ENVELOPE address
structures.

The parser never fails: real headers hold unbalanced quotes and brackets,
bare names, missing domains and stray commas.  It follows Dovecot's
C{message-address.c} in how it degrades: a missing local part becomes
C{MISSING_MAILBOX} and a missing domain C{MISSING_DOMAIN}, because RFC 3501
section 7.4.2 reserves a NIL host for group markers, so an address sent
with a NIL host would be read as the start of a group.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Address", "parse_addresses"]

MISSING_MAILBOX = b"MISSING_MAILBOX"
MISSING_DOMAIN = b"MISSING_DOMAIN"


class Address(NamedTuple):
    """One RFC 3501 address structure; all C{None} fields are NIL."""

    name: bytes | None
    adl: bytes | None
    mailbox: bytes | None
    host: bytes | None


# Token kinds.
_ATOM, _QUOTED, _COMMENT, _SPECIAL, _LITERAL = range(5)
_SPECIALS = b"()<>[]:;@\\,.\""


def _lex(value: bytes) -> list[tuple[int, bytes]]:
    """Split a header value into RFC 5322 section 3.2 lexical tokens."""
    tokens: list[tuple[int, bytes]] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in b" \t\r\n":
            i += 1
        elif c == 0x22:  # quoted-string, section 3.2.4
            out = bytearray()
            i += 1
            while i < n and value[i] != 0x22:
                if value[i] == 0x5C and i + 1 < n:
                    i += 1
                if value[i] not in b"\r\n":
                    out.append(value[i])
                i += 1
            tokens.append((_QUOTED, bytes(out)))
            i += 1
        elif c == 0x28:  # comment, section 3.2.2 (nested)
            depth, j = 0, i
            while j < n:
                if value[j] == 0x5C:
                    j += 1
                elif value[j] == 0x28:
                    depth += 1
                elif value[j] == 0x29:
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            tokens.append((_COMMENT, value[i + 1:j].replace(b"\r\n", b"").strip()))
            i = j + 1
        elif c == 0x5B:  # domain-literal, section 3.4.1
            j = value.find(b"]", i)
            j = n - 1 if j < 0 else j
            tokens.append((_LITERAL, value[i:j + 1]))
            i = j + 1
        elif c in _SPECIALS:
            tokens.append((_SPECIAL, bytes([c])))
            i += 1
        else:
            j = i
            while j < n and value[j] not in b" \t\r\n" and value[j] not in _SPECIALS:
                j += 1
            tokens.append((_ATOM, value[i:j]))
            i = j
    return tokens


def _phrase(tokens: list[tuple[int, bytes]]) -> bytes | None:
    # RFC 5322 section 3.2.5 phrase: words joined by one space; encoded
    # words stay raw (RFC 3501 sends the name undecoded).  Dots are
    # allowed in names (obs-phrase).
    # "." and "@" (an address used as a name, "a@b <a@b>") are glued to
    # their neighbours instead of standing as words.
    words: list[bytes] = []
    glue = False
    for kind, text in tokens:
        if kind == _SPECIAL and text in (b".", b"@"):
            if words:
                words[-1] += text
            else:
                words.append(text)
            glue = text == b"@" or b"@" in words[-1]
        elif kind in (_ATOM, _QUOTED) or (kind == _SPECIAL and text not in (b"<", b">")):
            if glue and words:
                words[-1] += text
            else:
                words.append(text)
            glue = False
    return b" ".join(words) if words else None


def _addr_spec(tokens: list[tuple[int, bytes]]) -> tuple[bytes | None, bytes | None, bytes | None]:
    """Return C{(adl, mailbox, host)} from the tokens of an addr-spec
    or an angle-addr's contents (with an obsolete route, section 4.4)."""
    adl = None
    # obs-route: "@a,@b:" before the addr-spec.
    if tokens and tokens[0] == (_SPECIAL, b"@"):
        colon = next((i for i, t in enumerate(tokens) if t == (_SPECIAL, b":")), -1)
        if colon >= 0:
            adl = b"".join(t for k, t in tokens[:colon] if k != _COMMENT) or None
            tokens = tokens[colon + 1:]
    at = -1
    for i in range(len(tokens) - 1, -1, -1):
        if tokens[i] == (_SPECIAL, b"@"):
            at = i
            break
    local_toks = tokens if at < 0 else tokens[:at]
    local = b"".join(t for k, t in local_toks if k != _COMMENT)
    host = None
    if at >= 0:
        host = b"".join(t for k, t in tokens[at + 1:] if k != _COMMENT)
    return adl, local or None, host or None


def _mailbox(tokens: list[tuple[int, bytes]]) -> Address | None:
    """One mailbox (name-addr or addr-spec) from its tokens."""
    tokens = [t for t in tokens]
    if not tokens:
        return None
    comments = [t for k, t in tokens if k == _COMMENT]
    lt = next((i for i, t in enumerate(tokens) if t == (_SPECIAL, b"<")), -1)
    if lt >= 0:
        gt = next((i for i in range(lt + 1, len(tokens)) if tokens[i] == (_SPECIAL, b">")), len(tokens))
        name = _phrase([t for t in tokens[:lt] if t[0] != _COMMENT])
        adl, local, host = _addr_spec([t for t in tokens[lt + 1:gt] if t[0] != _COMMENT])
        if local is None and host is None and name is None:
            return None  # "<>": the null path, nothing to report
    else:
        core = [t for t in tokens if t[0] != _COMMENT]
        if not core:
            return None
        name = None
        adl, local, host = _addr_spec(core)
    if name is None and comments:
        # Dovecot uses a trailing comment as the display name when there is
        # no phrase: "user@host (Real Name)".
        name = comments[-1] or None
    return Address(name, adl, local or MISSING_MAILBOX, host or MISSING_DOMAIN)


def parse_addresses(value: bytes | None) -> list[Address]:
    """
    Parse an address-list header value (RFC 5322 section 3.4) into address
    structures, with groups as RFC 3501 section 7.4.2 encodes them: a
    C{(NIL NIL name NIL)} start marker, the members, then
    C{(NIL NIL NIL NIL)}.

    @param value: the unfolded header value, or C{None}.
    @return: the addresses; empty when none can be found.
    """
    if not value:
        return []
    tokens = _lex(value)
    out: list[Address] = []
    current: list[tuple[int, bytes]] = []
    in_angle = False
    in_group = False
    for tok in tokens:
        if tok[0] == _SPECIAL:
            t = tok[1]
            if t == b"<":
                in_angle = True
            elif t == b">":
                in_angle = False
            elif not in_angle and t == b",":
                addr = _mailbox(current)
                if addr:
                    out.append(addr)
                current = []
                continue
            elif not in_angle and t == b":" and not in_group and b"@" not in b"".join(
                    x for k, x in current if k == _SPECIAL):
                # RFC 5322 section 3.4: group = display-name ":" [list] ";"
                out.append(Address(None, None, _phrase(current) or b"", None))
                in_group = True
                current = []
                continue
            elif not in_angle and t == b";" and in_group:
                addr = _mailbox(current)
                if addr:
                    out.append(addr)
                out.append(Address(None, None, None, None))
                in_group = False
                current = []
                continue
        current.append(tok)
    addr = _mailbox(current)
    if addr:
        out.append(addr)
    if in_group:
        out.append(Address(None, None, None, None))
    return out
