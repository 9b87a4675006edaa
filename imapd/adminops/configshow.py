# -*- test-case-name: tests.imapd.adminops.test_configshow -*-
"""
C{imapd-admin config [-a]}: the effective configuration, as C{doveconf -n}
(options whose value is not the default) or C{doveconf -a} (every
option), each with where its value came from: the configuration file
(L{conf.Config.origins}) or the defaults of L{conf.schema}.  The text
form is TOML the daemon reads back; C{--json} gives a list of
C{{option, value, default, source}}.
"""

from __future__ import annotations

import json

from imapd.adminops.common import add_command

__all__ = ["add_commands", "effective_options"]

#: The source of an option left at its default.
DEFAULT = "default"


def add_commands(areas) -> None:
    p = add_command(areas, "config", _config,
                    "the effective configuration: options not at their default, with the "
                    "file that set them",
                    "  imapd-admin -c /etc/imapd/imapd.toml config\n"
                    "  imapd-admin -c /etc/imapd/imapd.toml config -a --json")
    p.add_argument("-a", "--all", action="store_true", help="every option, defaults too")


def _quota_users(value) -> dict:
    return {user: {k: v for k, v in (("storage", storage), ("messages", messages))
                   if v is not None}
            for user, storage, messages in value}


#: The options whose loader converts the TOML value (C{convert} in
#: L{conf.schema}), back to what the file says: a table.  Sizes are kept
#: in KiB, which the file accepts as a number.
_AS_WRITTEN = {
    "quota.users": _quota_users,
    "mailboxes.special_use": dict,
}


def _plain(value):
    """A JSON/TOML-able form of an option's value."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return _plain(dataclasses.asdict(value))
    return str(value)


def effective_options(config, every: bool = False) -> list[dict]:
    """
    The options of C{config} in documentation order: C{option}, C{value},
    C{default} and C{source} (the file, or L{DEFAULT}).

    @param every: all options; else those whose value differs from the
        default (a path default compares after it is made absolute, as the
        loader does).
    """
    import os

    from conf.schema import PATH, option_specs

    rows = []
    for spec in option_specs():
        section = config.server if not spec.table else getattr(config, spec.table)
        value = getattr(section, spec.key)
        default = spec.default
        if spec.kind == PATH and default:
            default = os.path.normpath(os.path.join(os.getcwd(), default))
        if not every and value == default:
            continue
        written = _AS_WRITTEN.get(spec.name, _plain)
        rows.append({"option": spec.name, "value": written(value), "default": written(default),
                     "source": config.origins.get(spec.name, DEFAULT)})
    return rows


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if value is None:
        return '""'
    return repr(value)


def _config(config, args, out, err):
    rows = effective_options(config, args.all)
    if args.json:
        json.dump(rows, out, ensure_ascii=False)
        out.write("\n")
        return 0
    print(f"# imapd configuration: {config.source or 'no file (defaults only)'}", file=out)
    table = ""
    for row in rows:
        name = row["option"]
        here, _, key = name.rpartition(".")
        if here != table:
            print(f"\n[{here}]", file=out)
            table = here
        print(f"{key} = {_toml(row['value'])}  # {row['source']}", file=out)
    return 0
