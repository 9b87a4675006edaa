# -*- test-case-name: tests.imapd.test_healthcheck -*-
"""
C{python -m imapd.healthcheck [--config FILE]}: whether the running
server greets on each listener its configuration names (issue 16 item 7:
the container's HEALTHCHECK, which assumed 127.0.0.1:143).

    tcp:PORT[:interface=ADDR]   connect to ADDR (127.0.0.1 or ::1 for
                                every address), read "* OK"
    tls:PORT, ssl:PORT          the same inside TLS (the certificate is
                                not verified: the check is of the server,
                                not of its name)
    unix:PATH                   connect to the socket, read "* OK"

C{haproxy:} listeners are checked like the listener they wrap (a
connection from outside C{haproxy_trusted_networks} needs no header);
other kinds (C{systemd:}, plugins) are skipped.  Exit status 0 when
every checked listener greets, 1 otherwise, with one line per listener
that did not (Docker keeps the last lines of a failed check).
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys

__all__ = ["check_listener", "main"]

#: Seconds for the connection and the greeting of one listener.
TIMEOUT = 4.0


def _target(description: str):
    """
    (family, address, wrap in TLS) to connect to for C{description}, or
    None for a listener kind that is not checked.
    """
    from conf.endpoints import interface_of, is_implicit_tls, split_endpoint

    kind, args, kwargs = split_endpoint(description)
    if kind == "unix":
        return socket.AF_UNIX, kwargs.get("address") or args[0], False
    if kind not in ("tcp", "tcp6", "tls", "ssl"):
        return None
    port = int(kwargs.get("port") or args[0])
    interface = (interface_of(description) or "").strip("[]")
    if interface in ("", "0.0.0.0"):
        interface = "::1" if kind == "tcp6" else "127.0.0.1"
    elif interface == "::":
        interface = "::1"
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    return family, (interface, port), is_implicit_tls(description)


def check_listener(description: str, timeout: float = TIMEOUT) -> str | None:
    """
    Connect to one listener and read its greeting.

    @return: None if it greets with C{* OK}, else why not (one line);
        C{"skipped"} for a kind that is not checked.
    """
    target = _target(description)
    if target is None:
        return "skipped"
    family, address, tls = target
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            conn = sock
            if tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                conn = context.wrap_socket(sock)
            greeting = b""
            while b"\n" not in greeting and len(greeting) < 4096:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                greeting += chunk
    except (OSError, ssl.SSLError) as e:
        return f"{description}: {getattr(e, 'strerror', None) or e}"
    if not greeting.startswith(b"* OK"):
        line = greeting.split(b"\r\n", 1)[0].decode("ascii", "replace")
        return f"{description}: no IMAP greeting ({line!r})"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imapd.healthcheck",
        description="Exit 0 when every listener of the configuration greets.")
    parser.add_argument("--config", help="the server's configuration file")
    args = parser.parse_args(argv)
    from conf import ConfigError, load_config

    try:
        config = load_config(args.config, {})
    except ConfigError as e:
        print(f"imapd healthcheck: {e}", file=sys.stderr)
        return 1
    checked = 0
    failed = []
    for description in config.server.listen:
        why = check_listener(description)
        if why == "skipped":
            continue
        checked += 1
        if why is not None:
            failed.append(why)
    for why in failed:
        print(f"imapd healthcheck: {why}", file=sys.stderr)
    if not checked:
        print("imapd healthcheck: no listener to check", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
