# -*- test-case-name: tests.storage.maildir.test_maildir_keywords -*-
"""
Dovecot's C{dovecot-keywords}: which keyword each lowercase flag letter
stands for.  One line per keyword, C{<index> <name>}; index 0 is letter
C{a}, 25 is C{z}, so a Maildir holds at most 26 keywords (Dovecot's
C{MAILDIR_MAX_KEYWORDS}).

The file only ever grows: a letter, once given, keeps its meaning, because
file names carrying it may be anywhere in the Maildir.  Updates are
read-modify-write under the C{dovecot-keywords.lock} dotlock, replaced by
rename (DESIGN.md rules 3 and 4).
"""

from __future__ import annotations

import os

from storage.errors import StoreError
from storage.maildir.files import atomic_write, locked, read_file
from storage.nfs import fresh_stat

__all__ = ["KEYWORDS_NAME", "MAX_KEYWORDS", "parse", "serialize", "KeywordsFile"]

KEYWORDS_NAME = "dovecot-keywords"
MAX_KEYWORDS = 26


def parse(data: bytes) -> dict[int, str]:
    """
    Parse the file content into C{index -> name}.  Malformed lines and
    indexes out of range are skipped, as Dovecot does.
    """
    result: dict[int, str] = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        idx, sep, name = line.partition(" ")
        if not sep or not idx.isdigit() or not name:
            continue
        i = int(idx)
        if i < MAX_KEYWORDS and i not in result:
            result[i] = name
    return result


def serialize(keywords: dict[int, str]) -> bytes:
    """The file content for C{index -> name}, in index order."""
    return "".join(f"{i} {keywords[i]}\n" for i in sorted(keywords)).encode("utf-8")


def letter(index: int) -> str:
    """The flag letter of keyword C{index}."""
    return chr(ord("a") + index)


def index(letter_: str) -> int:
    """The keyword index of a lowercase flag letter."""
    return ord(letter_) - ord("a")


class KeywordsFile:
    """The C{dovecot-keywords} file of one Maildir."""

    def __init__(self, directory: str, fsync: bool = True, nfs: bool = False) -> None:
        self.path = os.path.join(directory, KEYWORDS_NAME)
        self.fsync = fsync
        #: Revalidate by opening (close-to-open), not by stat of the name,
        #: whose answer an NFS client may have cached (L{storage.nfs}).
        self.nfs = nfs
        self._key: tuple[int, int, int] | None = None
        self._map: dict[int, str] = {}

    def read(self) -> dict[int, str]:
        """C{index -> name}, re-read only when the file changed."""
        try:
            st = fresh_stat(self.path) if self.nfs else os.stat(self.path)
        except FileNotFoundError:
            self._key, self._map = None, {}
            return self._map
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self._key:
            data = read_file(self.path) or b""
            self._map = parse(data)
            self._key = key
        return self._map

    def names(self, letters: str) -> frozenset[str]:
        """The keyword names for lowercase letters; unknown letters are skipped."""
        mapping = self.read()
        return frozenset(
            mapping[index(c)] for c in letters if "a" <= c <= "z" and index(c) in mapping
        )

    def letters_for(self, names: frozenset[str] | set[str]) -> str:
        """
        The letters for keyword names, adding names that have no letter yet
        to the file.

        @raises StoreError: the 26 letters are all taken.
        """
        if not names:
            return ""
        found = self._lookup(self.read(), names)
        if found is not None:
            return found
        with locked(self.path):
            self._key = None
            mapping = dict(self.read())
            missing = [n for n in sorted(names) if _find(mapping, n) is None]
            free = [i for i in range(MAX_KEYWORDS) if i not in mapping]
            if len(missing) > len(free):
                raise StoreError(
                    f"{self.path}: no room for keywords {', '.join(missing)}: "
                    f"a Maildir holds at most {MAX_KEYWORDS} keywords"
                )
            for name, i in zip(missing, free):
                mapping[i] = name
            atomic_write(self.path, serialize(mapping), fsync=self.fsync)
            self._key = None
            result = self._lookup(self.read(), names)
        assert result is not None
        return result

    @staticmethod
    def _lookup(mapping: dict[int, str], names) -> str | None:
        letters = []
        for n in names:
            i = _find(mapping, n)
            if i is None:
                return None
            letters.append(letter(i))
        return "".join(letters)


def _find(mapping: dict[int, str], name: str) -> int | None:
    # Keywords are matched case-insensitively (RFC 3501 section 2.3.2 makes
    # flag names case-insensitive); an exact match wins.
    for i, n in mapping.items():
        if n == name:
            return i
    lower = name.lower()
    for i, n in mapping.items():
        if n.lower() == lower:
            return i
    return None
