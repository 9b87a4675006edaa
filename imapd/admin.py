# -*- test-case-name: tests.imapd.test_admin -*-
"""
C{imapd-admin}: the sysadmin's command for a running site.

    imapd-admin --config /etc/imapd/imapd.toml cluster add 10.0.0.2 --weight 100
    imapd-admin --config /etc/imapd/imapd.toml cluster owner alice@example.org

Each area of administration registers its sub-commands here
(C{cluster}, L{imapd.cluster.admin}; users and mail, L{imapd.adminops}).

Exit status, for every command:

    0   done
    1   not found (user, mailbox, message, session); for C{cluster}, a
        change the host table refuses
    2   error: bad usage (argparse's), a refused operation, a store or
        system error
    78  the configuration file cannot be used (sysexits' EX_CONFIG, as
        C{imapd-deliver}: a script can tell a broken file from a missing user)

Whatever fails, the command prints one line naming what and why, never
a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Optional, Sequence, TextIO

__all__ = ["main", "EX_CONFIG"]

#: sysexits.h: the configuration file cannot be used.
EX_CONFIG = 78


class UsageError(Exception):
    """A bad command line: C{str()} is the one line to print (status 2)."""


class _Parser(argparse.ArgumentParser):
    # Every sub-command's parser is of this class too (argparse makes
    # sub-parsers of the parent's class): one line on a bad argument, not
    # the usage block, and nothing printed on the process's own streams.
    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    from imapd import admin_migrate, adminops
    from imapd.cluster import admin as cluster_admin
    from imapd.fts import admin as fts_admin

    parser = _Parser(prog="imapd-admin",
                     description="Administer an imapd site.")
    parser.add_argument("--config", "-c", metavar="FILE",
                        help="the server's TOML configuration file")
    areas = parser.add_subparsers(dest="area", metavar="AREA", required=True)
    cluster_admin.add_commands(areas)
    adminops.add_commands(areas)
    admin_migrate.add_commands(areas)
    fts_admin.add_commands(areas)
    return parser


def _command_parser(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The parser of the (sub-)command C{args} was parsed for."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None))
            if chosen is not None:
                return _command_parser(chosen, args)
    return parser


def main(argv: Optional[Sequence[str]] = None, stdout: Optional[TextIO] = None,
         stderr: Optional[TextIO] = None) -> int:
    from conf import ConfigError, load_config

    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    try:
        with contextlib.redirect_stdout(stdout):  # --help goes to our stdout
            parser = build_parser()
            args, extra = parser.parse_known_args(argv)
            if extra:
                # Named by the command they were given to, not by the top.
                _command_parser(parser, args).error(
                    f"unrecognized arguments: {' '.join(extra)}")
    except UsageError as e:
        print(e, file=stderr)
        return 2
    except SystemExit as e:  # --help: printed, done
        return e.code if isinstance(e.code, int) else 0
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"imapd-admin: {e}", file=stderr)
        return EX_CONFIG
    try:
        return args.run(config, args, stdout, stderr)
    except Exception as e:  # never a traceback for the sysadmin
        print(f"imapd-admin: unexpected error: {type(e).__name__}: {e}", file=stderr)
        return 2


def console() -> None:
    """The C{imapd-admin} console script."""
    raise SystemExit(main())
