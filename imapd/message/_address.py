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

import re
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

# A token: (kind, text, preceded by whitespace or a comment).
Token = tuple[int, bytes, bool]


_LEX = re.compile(
    rb'([ \t\r\n]+)'                      # 1 whitespace
    rb'|"((?:[^"\\]|\\.)*)(?:"|$)'        # 2 quoted-string (maybe unclosed)
    rb'|(\[[^\]]*(?:\]|$))'               # 3 domain-literal
    rb'|([<>:;@,.\\\]])'                  # 4 special
    rb'|([^ \t\r\n()<>\[\]:;@\\,."]+)',  # 5 atom
    re.S,
)
_UNQUOTE = re.compile(rb"\\(.)|[\r\n]", re.S)


def _lex(value: bytes) -> list[Token]:
    """Split a header value into RFC 5322 section 3.2 lexical tokens."""
    tokens: list[Token] = []
    spaced = False
    i, n = 0, len(value)
    match = _LEX.match
    while i < n:
        if value[i] == 0x28:  # comment, section 3.2.2 (they nest)
            depth, j = 0, i
            while j < n:
                c = value[j]
                if c == 0x5C:
                    j += 1
                elif c == 0x28:
                    depth += 1
                elif c == 0x29:
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            text = value[i + 1:j].replace(b"\r", b"").replace(b"\n", b"").strip()
            tokens.append((_COMMENT, text, spaced))
            i = j + 1
            spaced = True  # a comment separates words like whitespace
            continue
        m = match(value, i)
        if m is None:  # a lone ")" or other stray byte: skip it
            i += 1
            continue
        kind = m.lastindex
        if kind == 1:
            spaced = True
        else:
            if kind == 2:
                text = m.group(2)
                if b"\\" in text or b"\r" in text or b"\n" in text:
                    text = _UNQUOTE.sub(lambda x: x.group(1) or b"", text)
                tokens.append((_QUOTED, text, spaced))
            elif kind == 3:
                tokens.append((_LITERAL, m.group(3), spaced))
            elif kind == 4:
                tokens.append((_SPECIAL, m.group(4), spaced))
            else:
                tokens.append((_ATOM, m.group(5), spaced))
            spaced = False
        i = m.end()
    return tokens


def _is(token: Token, special: bytes) -> bool:
    return token[0] == _SPECIAL and token[1] == special


def _phrase(tokens: list[Token]) -> bytes | None:
    # RFC 5322 section 3.2.5 phrase, its words separated as they were in
    # the header (one space for any run of whitespace or comments), so
    # "J. R. Smith" and "example.org" both survive.  Encoded words stay
    # raw (RFC 3501 sends the name undecoded); comments are dropped, as by
    # Dovecot's rfc822_parse_phrase.
    out = bytearray()
    first = True
    for kind, text, spaced in tokens:
        if kind == _COMMENT or (kind == _SPECIAL and text in (b"<", b">")):
            continue
        if spaced and not first:
            out += b" "
        out += text
        first = False
    return None if first else bytes(out)


def _join(tokens: list[Token]) -> bytes:
    return b"".join(text for kind, text, _ in tokens if kind != _COMMENT)


def _addr_spec(tokens: list[Token]) -> tuple[bytes | None, bytes | None, bytes | None]:
    """Return C{(adl, mailbox, host)} from the tokens of an addr-spec
    or an angle-addr's contents (with an obsolete route, section 4.4)."""
    adl = None
    # obs-route: "@a,@b:" before the addr-spec.
    if tokens and _is(tokens[0], b"@"):
        colon = next((i for i, t in enumerate(tokens) if _is(t, b":")), -1)
        if colon >= 0:
            # Dovecot writes the route comma-separated whatever the
            # separators were: "@a@b" and "@a ,@b" both become "@a,@b".
            route: list[bytes] = []
            for kind, text, _ in tokens[:colon]:
                if kind == _SPECIAL and text == b"@":
                    route.append(b"@")
                elif kind != _COMMENT and not (kind == _SPECIAL and text == b",") and route:
                    route[-1] += text
            adl = b",".join(r for r in route if r != b"@") or None
            tokens = tokens[colon + 1:]
    # The last "@" separates the domain: "a@b@c" is local part "a@b".
    at = next((i for i in range(len(tokens) - 1, -1, -1) if _is(tokens[i], b"@")), -1)
    if at < 0:
        return adl, _join(tokens) or None, None
    return adl, _join(tokens[:at]) or None, _join(tokens[at + 1:]) or None


def _words(tokens: list[Token]) -> list[list[Token]]:
    # Split an addr-spec at whitespace between two words: "a.b" and
    # "a . b" stay one group, "Big Bug bb@x" becomes three.
    groups: list[list[Token]] = []
    prev = None
    for tok in tokens:
        if tok[0] == _COMMENT:
            continue
        if (groups and tok[2] and tok[0] in (_ATOM, _QUOTED)
                and prev in (_ATOM, _QUOTED, _LITERAL)):
            groups.append([tok])
        elif groups:
            groups[-1].append(tok)
        else:
            groups.append([tok])
        prev = tok[0]
    return groups


def _mailbox(tokens: list[Token]) -> list[Address]:
    """The mailbox (name-addr or addr-spec) in C{tokens}; a bare list of
    words is read the way people mistype it."""
    if not tokens:
        return []
    comments = [text for kind, text, _ in tokens if kind == _COMMENT]
    name: bytes | None
    lt = next((i for i, t in enumerate(tokens) if _is(t, b"<")), -1)
    if lt >= 0:
        gt = next((i for i in range(lt + 1, len(tokens)) if _is(tokens[i], b">")), len(tokens))
        name = _phrase(tokens[:lt])
        adl, local, host = _addr_spec(tokens[lt + 1:gt])
        if local is None and host is None and not name:
            return []  # "<>": the null path, nothing to report
        specs = [(adl, local, host)]
    else:
        groups = _words(tokens)
        if not groups:
            return []
        name = None
        with_at = [g for g in groups if any(_is(t, b"@") for t in g)]
        if len(groups) > 1 and len(with_at) > 1 and len(with_at) == len(groups):
            # "a@x b@y": a missing comma.
            specs = [_addr_spec(g) for g in groups]
        elif len(groups) > 1 and with_at == groups[-1:]:
            # "Big Bug bb@bug.com": a name without its angle brackets.
            name = _phrase([t for g in groups[:-1] for t in g])
            specs = [_addr_spec(groups[-1])]
        else:
            specs = [_addr_spec([t for g in groups for t in g])]
    if name is None and comments:
        # Dovecot uses a trailing comment as the display name when there is
        # no phrase: "user@host (Real Name)".
        name = comments[-1] or None
    return [Address(name, adl, local or MISSING_MAILBOX, host or MISSING_DOMAIN)
            for adl, local, host in specs]


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
    out: list[Address] = []
    current: list[Token] = []
    in_angle = False
    in_group = False
    for tok in _lex(value):
        if tok[0] == _SPECIAL:
            t = tok[1]
            if t == b"<":
                in_angle = True
            elif t == b">":
                in_angle = False
            elif not in_angle and t == b",":
                out.extend(_mailbox(current))
                current = []
                continue
            elif (not in_angle and t == b":" and not in_group
                  and not any(_is(x, b"@") for x in current)):
                # RFC 5322 section 3.4: group = display-name ":" [list] ";"
                out.append(Address(None, None, _phrase(current) or b"", None))
                in_group = True
                current = []
                continue
            elif not in_angle and t == b";" and in_group:
                out.extend(_mailbox(current))
                out.append(Address(None, None, None, None))
                in_group = False
                current = []
                continue
        current.append(tok)
    out.extend(_mailbox(current))
    if in_group:
        out.append(Address(None, None, None, None))
    return out
