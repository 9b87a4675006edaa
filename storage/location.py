# -*- test-case-name: tests.storage.test_storage_location -*-
"""
Dovecot C{mail_location} strings::

    maildir:~/Maildir
    maildir:/srv/mail/%u
    maildir:~/Maildir:INDEX=/var/index/%u:LAYOUT=maildir++
    mbox:~/mail:INBOX=/var/mail/%u

C{<driver>:<root>[:<KEY>=<value>]...}; C{::} stands for a literal C{:} in a
path, as in Dovecot.  Variables: C{%u} (the user), C{%n} (the user part
before C{@}), C{%d} (the domain after C{@}), C{%h} (home), C{%%}, with the
long forms C{%{user}}, C{%{username}}, C{%{domain}}, C{%{home}}; C{~} at
the start of a path is the home directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from storage.errors import StoreError

__all__ = ["LocationError", "MailLocation", "parse_location", "expand"]

#: Drivers whose location syntax we parse (whether or not a store exists).
DRIVERS = ("maildir", "mbox", "sdbox", "mdbox")
#: LAYOUT values each driver supports so far.
LAYOUTS = {"maildir": ("maildir++",)}


class LocationError(StoreError):
    """A C{mail_location} string that we cannot use; the message says why."""


@dataclass(frozen=True, slots=True)
class MailLocation:
    """
    A parsed, expanded C{mail_location}.

    @ivar driver: C{"maildir"}, C{"mbox"}, ...
    @ivar root: the mail root directory.
    @ivar inbox: C{INBOX=}, the INBOX path when it is not in the root.
    @ivar index: C{INDEX=}, the per-node index directory.
    @ivar options: every other C{KEY=value} (and bare C{KEY}) in order,
        keys upper-cased; a bare key has the value C{""}.
    """

    driver: str
    root: str
    inbox: str | None = None
    index: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str, default: str | None = None) -> str | None:
        """The value of option C{key} (case-insensitive), or C{default}."""
        key = key.upper()
        for k, v in self.options:
            if k == key:
                return v
        return default


_VARS = re.compile(r"%(%|\{[a-z]+\}|[a-zA-Z])")
_LONG = {"user": "u", "username": "n", "domain": "d", "home": "h"}


def expand(text: str, user: str, home: str | None) -> str:
    """
    Expand C{%} variables and a leading C{~} in C{text}.

    @raises LocationError: an unknown variable, or C{~}/C{%h} without a
        home directory.
    """
    name, at, domain = user.partition("@")

    def need_home(what: str) -> str:
        if not home:
            raise LocationError(f"mail_location uses {what} but user {user!r} has no home")
        return home.rstrip("/") or "/"

    def sub(m: re.Match[str]) -> str:
        var = m.group(1)
        if var == "%":
            return "%"
        if var.startswith("{"):
            long = var[1:-1]
            if long not in _LONG:
                raise LocationError(f"unknown mail_location variable %{var}")
            var = _LONG[long]
        if var == "u":
            return user
        if var == "n":
            return name
        if var == "d":
            return domain if at else ""
        if var == "h":
            return need_home("%h")
        raise LocationError(f"unknown mail_location variable %{var}")

    if text == "~" or text.startswith("~/"):
        text = need_home("~") + text[1:]
    return _VARS.sub(sub, text)


def _split(spec: str) -> list[str]:
    # ":" separates fields, "::" is a literal ":" (Dovecot's escaping).
    fields, current, i = [], [], 0
    while i < len(spec):
        if spec[i] == ":":
            if spec.startswith("::", i):
                current.append(":")
                i += 2
                continue
            fields.append("".join(current))
            current = []
        else:
            current.append(spec[i])
        i += 1
    fields.append("".join(current))
    return fields


def parse_location(spec: str, user: str, home: str | None = None) -> MailLocation:
    """
    Parse and expand a C{mail_location} string for one user.

    @raises LocationError: no driver, an unknown driver, an empty root, or
        an unsupported C{LAYOUT}.
    """
    driver, sep, rest = spec.strip().partition(":")
    driver = driver.lower()
    if not sep:
        raise LocationError(
            f"mail_location {spec!r} does not name a driver (e.g. 'maildir:~/Maildir')"
        )
    if driver not in DRIVERS:
        raise LocationError(f"mail_location {spec!r}: unknown driver {driver!r}")
    fields = _split(rest)
    root = expand(fields[0], user, home)
    if not root:
        raise LocationError(f"mail_location {spec!r} has no mail root")
    inbox = index = None
    options: list[tuple[str, str]] = []
    for field_ in fields[1:]:
        if not field_:
            continue
        key, _, value = field_.partition("=")
        key = key.upper()
        value = expand(value, user, home) if value else value
        if key == "INBOX":
            inbox = value
        elif key == "INDEX":
            index = value
        else:
            options.append((key, value))
    location = MailLocation(driver, root.rstrip("/") or "/", inbox, index, tuple(options))
    layout = location.option("LAYOUT")
    if layout is not None and driver in LAYOUTS and layout.lower() not in LAYOUTS[driver]:
        raise LocationError(
            f"mail_location {spec!r}: LAYOUT={layout} is not supported for {driver}; "
            f"supported: {', '.join(LAYOUTS[driver])}"
        )
    return location
