# -*- test-case-name: tests.imapd.cluster.test_hashing -*-
"""
The user hash of Dovecot 2.3's director (C{src/lib-mail/mail-user-hash.c}).

The key is C{director_username_hash} expanded for the user (default
C{%Lu}); the hash is the first four bytes of the key's MD5, big-endian,
with 0 replaced by 1 (Dovecot keeps 0 for "no hash").  Using Dovecot's
function keeps placement identical when a site moves from a Dovecot
director to us, and lets MTA and webmail scripts reproduce it.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["DEFAULT_FORMAT", "HashFormatError", "expand_key", "user_hash", "hash32",
           "check_format"]

#: Dovecot's default C{director_username_hash}.
DEFAULT_FORMAT = "%Lu"

#: ASCII-only lowercasing, as Dovecot's C{%L} (C{str_lcase}, C{i_tolower}):
#: a non-ASCII letter such as "Å" stays as it is.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# %u %n %d, optionally with the L (lowercase) modifier, the long forms
# %{user} %{username} %{domain} (also with L before the brace), and %%.
_VARIABLE = re.compile(r"%(?P<lower>L?)(?:(?P<short>[und%])|\{(?P<long>[^}]*)\})")
_LONG_NAMES = {"user": "u", "username": "n", "domain": "d"}


class HashFormatError(ValueError):
    """The hash format names a variable we do not know."""


def hash32(data: bytes) -> int:
    """First four bytes of MD5(C{data}), big-endian; 0 becomes 1."""
    value = int.from_bytes(hashlib.md5(data).digest()[:4], "big")
    return value or 1


def _parts(user: str) -> dict[str, str]:
    # %n is the part before the first "@", %d the part after it (empty
    # without an "@"): Dovecot's own vectors show "test@user@domain"
    # hashing %n as "test" and %d as "user@domain".
    name, _, domain = user.partition("@")
    return {"u": user, "n": name, "d": domain}


def expand_key(user: str, fmt: str = DEFAULT_FORMAT) -> str:
    """
    The hash key of C{user} under C{fmt}.

    @raises HashFormatError: C{fmt} has an unknown variable or a lone C{%}.
    """
    parts = _parts(user)
    out = []
    pos = 0
    for m in _VARIABLE.finditer(fmt):
        literal = fmt[pos:m.start()]
        if "%" in literal:
            raise HashFormatError(f"{fmt!r}: unknown variable at {literal[literal.index('%'):]!r}")
        out.append(literal)
        pos = m.end()
        short = m.group("short")
        if short == "%":
            value = "%"
        else:
            if short is None:
                name = m.group("long")
                short = _LONG_NAMES.get(name)
                if short is None:
                    raise HashFormatError(f"{fmt!r}: unknown variable '%{{{name}}}'")
            value = parts[short]
        if m.group("lower"):
            value = value.translate(_ASCII_LOWER)
        out.append(value)
    rest = fmt[pos:]
    if "%" in rest:
        raise HashFormatError(f"{fmt!r}: unknown variable at {rest[rest.index('%'):]!r}")
    out.append(rest)
    return "".join(out)


def check_format(fmt: str) -> None:
    """Raise L{HashFormatError} when C{fmt} cannot be expanded."""
    expand_key("user@example.org", fmt)


def user_hash(user: str, fmt: str = DEFAULT_FORMAT) -> int:
    """The director hash of C{user}: an unsigned 32-bit integer, never 0."""
    return hash32(expand_key(user, fmt).encode("utf-8"))
