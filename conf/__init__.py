# -*- test-case-name: tests.conf.test_config -*-
"""
Configuration: one TOML file, command-line overrides, checked at start.

    >>> config = load_config("/etc/imapd/imapd.toml", {"listen": ["tcp:143"]})
    >>> config.tls.cert

Every option has a default (L{conf.schema}); a value that is unknown, of the
wrong type or unusable raises L{ConfigError}, whose text names the file (or
"command line") and the option, e.g.
C{/etc/imapd/imapd.toml: option 'listen': 'tcp:x': invalid literal ...}.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import typing
from typing import Any, Optional

from conf.schema import PATH, SECTIONS, Config, Spec, option_specs

__all__ = ["ConfigError", "Config", "load_config", "COMMAND_LINE"]

#: The source named in messages about command-line options.
COMMAND_LINE = "command line"


class ConfigError(Exception):
    """
    The configuration can't be used.

    @ivar source: the file, or L{COMMAND_LINE}.
    @ivar option: the dotted option name, or None for the file as a whole.
    @ivar reason: what is wrong.
    """

    def __init__(self, source: str, option: Optional[str], reason: str) -> None:
        super().__init__(source, option, reason)
        self.source = source
        self.option = option
        self.reason = reason

    def __str__(self) -> str:
        if self.option is None:
            return f"{self.source}: {self.reason}"
        return f"{self.source}: option '{self.option}': {self.reason}"


_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number"}


def _describe(value: Any) -> str:
    kinds = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "an array",
        dict: "a table",
    }
    return f"{kinds.get(type(value), type(value).__name__)} ({value!r})"


def _coerce(spec: Spec, value: Any) -> Any:
    """Check the TOML type of C{value}; raise L{ValueError} if it's wrong."""
    expected = spec.type
    if typing.get_origin(expected) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"must be an array of strings, not {_describe(value)}")
        return tuple(value)
    if expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"must be a number, not {_describe(value)}")
    if expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"must be an integer, not {_describe(value)}")
    if expected in (str, bool):
        if type(value) is expected:
            return value
        raise ValueError(f"must be {_TYPE_NAMES[expected]}, not {_describe(value)}")
    return value  # Any: the option's check decides.


def _resolve(value: str, base: str) -> str:
    if value == "":
        return value
    return os.path.normpath(os.path.join(base, os.path.expanduser(value)))


def _unknown(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return "unknown option" + hint


class _Loader:
    def __init__(self) -> None:
        self.specs = {s.name: s for s in option_specs()}
        self.values: dict[str, Any] = {}
        self.origin: dict[str, str] = {}

    def set(self, name: str, value: Any, source: str, base: str) -> None:
        spec = self.specs.get(name)
        if spec is None:
            raise ConfigError(source, name, _unknown(name, list(self.specs)))
        try:
            value = _coerce(spec, value)
            if spec.convert is not None:
                value = spec.convert(value)
            if spec.kind == PATH:
                value = _resolve(value, base)
            if spec.check is not None:
                spec.check(value)
        except ValueError as e:
            raise ConfigError(source, name, str(e)) from None
        self.values[name] = value
        self.origin[name] = source

    def read_file(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(path, None, f"cannot read it: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(path, None, f"not valid TOML: {e}") from None
        base = os.path.dirname(os.path.abspath(path))
        for key, value in data.items():
            if key in SECTIONS and key:
                if not isinstance(value, dict):
                    raise ConfigError(path, key, f"must be a table ([{key}]), not {_describe(value)}")
                for subkey, subvalue in value.items():
                    self.set(f"{key}.{subkey}", subvalue, path, base)
            else:
                self.set(key, value, path, base)

    def build(self, source: Optional[str]) -> Config:
        sections = {}
        for table, cls in SECTIONS.items():
            kwargs = {}
            for f in dataclasses.fields(cls):
                name = f"{table}.{f.name}" if table else f.name
                if name in self.values:
                    kwargs[f.name] = self.values[name]
                elif self.specs[name].kind == PATH and f.default:
                    kwargs[f.name] = _resolve(f.default, os.getcwd())
            sections[table or "server"] = cls(**kwargs)
        return Config(source=source, origins=dict(self.origin), **sections)

    def where(self, name: str) -> str:
        return self.origin.get(name, "default settings")


def _check_together(config: Config, loader: _Loader) -> None:
    """Checks that involve several options or the file system."""
    from conf.endpoints import uses_tls_section

    tls = config.tls
    if bool(tls.cert) != bool(tls.key):
        given, missing = ("tls.cert", "tls.key") if tls.cert else ("tls.key", "tls.cert")
        raise ConfigError(loader.where(given), given, f"needs '{missing}' too")
    for name, path in (
        ("tls.cert", tls.cert),
        ("tls.key", tls.key),
        ("auth.passwd_file", config.auth.passwd_file),
    ):
        if path and not os.path.isfile(path):
            raise ConfigError(loader.where(name), name, f"no such file: {path}")
        if path and not os.access(path, os.R_OK):
            raise ConfigError(loader.where(name), name, f"cannot read {path}")
    from conf.endpoints import proxy_protocol

    if not config.server.haproxy_trusted_networks:
        for description in config.server.listen:
            if proxy_protocol(description)[0]:
                raise ConfigError(loader.where("listen"), "listen",
                                  f"{description!r} reads PROXY headers, but "
                                  "'haproxy_trusted_networks' is empty")
    cluster = config.cluster
    if cluster.relay and not (cluster.node and cluster.hosts_file):
        raise ConfigError(loader.where("cluster.relay"), "cluster.relay",
                          "needs 'cluster.node' and 'cluster.hosts_file'")
    for name in ("socketmap_listen", "auth_http_listen"):
        if getattr(cluster, name) and not cluster.hosts_file:
            raise ConfigError(loader.where(f"cluster.{name}"), f"cluster.{name}",
                              "needs 'cluster.hosts_file' (the host table)")
    storage = config.storage
    if storage.threads_per_mailbox > storage.threads:
        raise ConfigError(loader.where("storage.threads_per_mailbox"), "storage.threads_per_mailbox",
                          f"is {storage.threads_per_mailbox}, more than 'storage.threads' "
                          f"({storage.threads}): one mailbox could take the whole pool")
    if not tls.enabled:
        for description in config.server.listen:
            if uses_tls_section(description):
                # Blame the option the user wrote, not the default.
                if "listen" in loader.origin:
                    raise ConfigError(
                        loader.where("listen"),
                        "listen",
                        f"{description!r} needs TLS, but 'tls.enabled' is false",
                    )
                raise ConfigError(
                    loader.where("tls.enabled"),
                    "tls.enabled",
                    f"the default listener {description!r} needs TLS; "
                    "set 'listen' to plain listeners only",
                )


def load_config(path: Optional[str], overrides: Optional[dict] = None) -> Config:
    """
    Read and check the configuration.

    @param path: the TOML file, or None for defaults only.
    @param overrides: dotted option name -> value from the command line;
        they win over the file.  Relative paths in them are relative to the
        working directory.
    @raises ConfigError: naming the option and where it was set.
    """
    loader = _Loader()
    if path is not None:
        loader.read_file(path)
    for name, value in (overrides or {}).items():
        loader.set(name, value, COMMAND_LINE, os.getcwd())
    config = loader.build(os.path.abspath(path) if path is not None else None)
    _check_together(config, loader)
    return config
