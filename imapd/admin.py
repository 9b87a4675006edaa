# -*- test-case-name: tests.imapd.test_admin -*-
"""
C{imapd-admin}: the sysadmin's command for a running site.

    imapd-admin --config /etc/imapd/imapd.toml cluster add 10.0.0.2 --weight 100
    imapd-admin --config /etc/imapd/imapd.toml cluster owner alice@example.org

Each area of administration registers its sub-commands here (today:
C{cluster}, L{imapd.cluster.admin}).  Exit status: 0 done, 1 refused or
failed (the message says why), 2 bad usage, 78 configuration unusable.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence, TextIO

__all__ = ["main", "EX_CONFIG"]

#: sysexits.h: the configuration file cannot be used.
EX_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
    from imapd.cluster import admin as cluster_admin
    from imapd.fts import admin as fts_admin

    parser = argparse.ArgumentParser(prog="imapd-admin",
                                     description="Administer an imapd site.")
    parser.add_argument("--config", "-c", metavar="FILE",
                        help="the server's TOML configuration file")
    areas = parser.add_subparsers(dest="area", metavar="AREA", required=True)
    cluster_admin.add_commands(areas)
    fts_admin.add_commands(areas)
    return parser


def main(argv: Optional[Sequence[str]] = None, stdout: Optional[TextIO] = None,
         stderr: Optional[TextIO] = None) -> int:
    from conf import ConfigError, load_config

    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"imapd-admin: {e}", file=stderr)
        return EX_CONFIG
    return args.run(config, args, stdout, stderr)


def console() -> None:
    """The C{imapd-admin} console script."""
    raise SystemExit(main())
