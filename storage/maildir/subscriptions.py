# -*- test-case-name: tests.storage.maildir.test_maildir_store -*-
"""
Dovecot's C{subscriptions} file (C{subscription-file.c}), version 2::

    V<TAB>2
    <empty line>
    Archive
    Archive<TAB>2024
    &ANw-n&AO8-code
    INBOX

One name per line, hierarchy levels separated by TAB, each level in
modified UTF-7 and "tab-escaped" (C{\\x01} followed by C{1 t r n} stands for
C{\\x01 TAB CR LF}).  A file without the header is version 1: the levels
are separated by the Maildir++ separator C{.}.  We always write version 2,
read-modify-write under the C{subscriptions.lock} dotlock, by rename.
"""

from __future__ import annotations

import os

from storage import mutf7
from storage.maildir.files import atomic_write, locked, read_file

__all__ = ["SUBSCRIPTIONS_NAME", "parse", "serialize", "SubscriptionsFile"]

SUBSCRIPTIONS_NAME = "subscriptions"
_HEADER = "V\t2\n\n"
_ESCAPES = {"\x01": "\x011", "\t": "\x01t", "\r": "\x01r", "\n": "\x01n"}
_UNESCAPES = {"1": "\x01", "t": "\t", "r": "\r", "n": "\n"}


def _escape(level: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in level)


def _unescape(level: str) -> str:
    out = []
    i = 0
    while i < len(level):
        c = level[i]
        if c == "\x01" and i + 1 < len(level):
            out.append(_UNESCAPES.get(level[i + 1], level[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _decode_level(level: str) -> str:
    try:
        return mutf7.decode(level)
    except ValueError:
        # Not ours to judge: keep a name another program wrote as it is.
        return level


def parse(data: bytes) -> list[str]:
    """The subscribed names (C{/}-separated Unicode), in file order."""
    text = data.decode("utf-8", "surrogateescape")
    if text.startswith(_HEADER):
        lines = text[len(_HEADER) :].split("\n")
        levels = [[_unescape(p) for p in line.split("\t")] for line in lines if line]
    else:
        levels = [line.split(".") for line in text.split("\n") if line]
    names = []
    for parts in levels:
        name = "/".join(_decode_level(p) for p in parts)
        if name.upper() == "INBOX":
            name = "INBOX"
        if name not in names:
            names.append(name)
    return names


def serialize(names: list[str]) -> bytes:
    """The version 2 file content for C{names}."""
    lines = [
        "\t".join(_escape(mutf7.encode(p)) for p in name.split("/")) for name in names
    ]
    return (_HEADER + "".join(line + "\n" for line in lines)).encode(
        "utf-8", "surrogateescape"
    )


class SubscriptionsFile:
    """The subscriptions file in the mail root."""

    def __init__(self, root: str, fsync: bool = True) -> None:
        self.path = os.path.join(root, SUBSCRIPTIONS_NAME)
        self.fsync = fsync

    def read(self) -> list[str]:
        """The subscribed names."""
        data = read_file(self.path)
        return parse(data) if data else []

    def change(self, name: str, subscribe: bool) -> bool:
        """
        Add or remove C{name}.

        @return: whether the file changed (C{False}: it was already
            subscribed, or was not subscribed when removing).
        """
        with locked(self.path):
            names = self.read()
            if subscribe == (name in names):
                return False
            if subscribe:
                names.append(name)
            else:
                names.remove(name)
            atomic_write(self.path, serialize(names), fsync=self.fsync)
            return True
