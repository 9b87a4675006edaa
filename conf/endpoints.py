# -*- test-case-name: tests.conf.test_endpoints -*-
"""
Listener descriptions: Twisted server endpoint strings, plus C{tls:}.

C{tls:PORT[:interface=ADDR]} is our shorthand for an implicit-TLS listener
that uses the certificate of the C{[tls]} table: it listens like
C{tcp:PORT...} and wraps every connection in TLS before IMAP starts.
Everything else (C{tcp:}, C{tcp6:}, C{ssl:}, C{unix:}, C{systemd:}, and
endpoint plugins) is passed to L{twisted.internet.endpoints.serverFromString}
unchanged.
"""

from __future__ import annotations

import ipaddress

__all__ = [
    "proxy_protocol",
    "split_endpoint",
    "check_endpoint",
    "twisted_description",
    "is_implicit_tls",
    "uses_tls_section",
    "is_local",
]

#: Endpoint types that speak TLS from the first byte.
_IMPLICIT_TLS = ("ssl", "tls")
#: Position of the interface among the positional arguments, per type
#: (see twisted.internet.endpoints._parseTCP and _parseSSL).
_INTERFACE_POSITION = {"tcp": 1, "tcp6": 1, "tls": 1, "ssl": 4}


#: The prefix of a listener that reads a PROXY protocol header from
#: trusted proxies (L{imapd.proxyprotocol}); the rest is the endpoint.
PROXY_PREFIX = "haproxy:"


def proxy_protocol(description: str) -> tuple[bool, str]:
    """C{("haproxy:tcp:143")} -> C{(True, "tcp:143")}; others unchanged."""
    if description[:len(PROXY_PREFIX)].lower() == PROXY_PREFIX:
        return True, description[len(PROXY_PREFIX):]
    return False, description


def split_endpoint(description: str) -> tuple[str, list[str], dict[str, str]]:
    """
    Split an endpoint string the way Twisted does: C{:} separates fields,
    the first C{=} of a field makes it a keyword, C{\\} escapes a character.

    @return: (type in lower case, positional arguments, keyword arguments)
        of the endpoint (after a C{haproxy:} prefix)
    """
    description = proxy_protocol(description)[1]
    fields: list[list[str]] = [[""]]  # each field: [text] or [key, value]
    chars = iter(description)
    for char in chars:
        if char == "\\":
            fields[-1][-1] += next(chars, "")
        elif char == ":":
            fields.append([""])
        elif char == "=" and len(fields[-1]) == 1:
            fields[-1].append("")
        else:
            fields[-1][-1] += char
    kind = fields[0][0].lower() if len(fields[0]) == 1 else ""
    args = [f[0] for f in fields[1:] if len(f) == 1]
    kwargs = {f[0]: f[1] for f in fields[1:] if len(f) == 2}
    return kind, args, kwargs


def twisted_description(description: str) -> str:
    """
    What to give L{serverFromString}: C{tls:} becomes C{tcp:}, and a
    C{haproxy:} prefix goes (the server wraps the factory itself).
    """
    description = proxy_protocol(description)[1]
    kind, sep, rest = description.partition(":")
    if kind.lower() == "tls":
        return "tcp:" + rest
    return description


def is_implicit_tls(description: str) -> bool:
    """Whether the listener speaks TLS from the first byte (port 993 style)."""
    return split_endpoint(description)[0] in _IMPLICIT_TLS


def uses_tls_section(description: str) -> bool:
    """Whether the listener needs the certificate of C{[tls]}."""
    return split_endpoint(description)[0] == "tls"


def interface_of(description: str) -> str | None:
    """The address a TCP-like listener binds, "" for all, None if not TCP."""
    kind, args, kwargs = split_endpoint(description)
    if kind not in _INTERFACE_POSITION:
        return None
    if "interface" in kwargs:
        return kwargs["interface"]
    position = _INTERFACE_POSITION[kind]
    return args[position] if len(args) > position else ""


def is_local(description: str) -> bool:
    """
    Whether only this machine can connect: a TCP listener on a loopback
    address, or a UNIX socket.
    """
    kind = split_endpoint(description)[0]
    if kind == "unix":
        return True
    interface = interface_of(description)
    if not interface:
        return False
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface.strip("[]")).is_loopback
    except ValueError:
        return False


class _NoReactor:
    """
    Stands in for the reactor while endpoint strings are checked: the
    parsers only store it, and nothing listens until the service starts.
    """


def check_endpoint(description: str) -> None:
    """
    Raise L{ValueError} if C{description} is not a server endpoint string
    Twisted understands (for C{ssl:}, this also reads the key files).
    """
    from twisted.internet.endpoints import serverFromString

    if not isinstance(description, str) or not description:
        raise ValueError(f"{description!r} is not an endpoint string")
    kind, args, kwargs = split_endpoint(description)
    if kind in ("tcp", "tcp6", "tls", "ssl") and not (args or "port" in kwargs):
        raise ValueError(f"{description!r}: no port (write it as {kind}:PORT...)")
    try:
        serverFromString(_NoReactor(), twisted_description(description))
    except Exception as e:
        reason = str(e) or type(e).__name__
        raise ValueError(f"{description!r}: {reason}") from None
    if kind in ("tcp", "tcp6", "tls", "ssl"):
        # Twisted parses any integer and fails only when it binds, with a
        # traceback; a port is 16 bits (RFC 793 section 3.1).
        port = int(kwargs.get("port") or args[0])
        if not 0 <= port <= 65535:
            raise ValueError(f"{description!r}: port {port} is not between 0 and 65535")
