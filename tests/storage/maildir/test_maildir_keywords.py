# -*- test-case-name: tests.storage.maildir.test_maildir_keywords -*-
"""Tests for L{storage.maildir.keywords}."""

from __future__ import annotations

import os

import pytest

from storage.errors import StoreError
from storage.maildir import keywords
from storage.maildir.keywords import KeywordsFile

from storage_maildir_testutil import FIXTURE_MAILDIR


def test_fixture_keywords():
    """The fixture's file maps a..d to the keywords Dovecot gave them."""
    with open(os.path.join(FIXTURE_MAILDIR, "dovecot-keywords"), "rb") as f:
        data = f.read()
    mapping = keywords.parse(data)
    assert mapping == {0: "$Forwarded", 1: "$Junk", 2: "project-x", 3: "$Label1"}
    assert keywords.serialize(mapping) == data


def test_malformed_lines_skipped():
    """Garbage and out-of-range indexes are ignored, as Dovecot does."""
    assert keywords.parse(b"x y\n26 toolate\n1 ok\n\n2\n") == {1: "ok"}


def test_new_keywords_get_free_letters(tmp_path):
    """New names take the lowest free indexes; known names keep theirs."""
    (tmp_path / "dovecot-keywords").write_bytes(b"0 $Forwarded\n2 old\n")
    kf = KeywordsFile(str(tmp_path), fsync=False)
    assert kf.letters_for({"$Forwarded"}) == "a"
    assert sorted(kf.letters_for({"$forwarded", "new", "old"})) == ["a", "b", "c"]
    assert (tmp_path / "dovecot-keywords").read_bytes() == b"0 $Forwarded\n1 new\n2 old\n"
    assert kf.names("abcz") == {"$Forwarded", "new", "old"}


def test_26_keywords_at_most(tmp_path):
    """The 27th keyword is refused with a clear error; the file is intact."""
    kf = KeywordsFile(str(tmp_path), fsync=False)
    kf.letters_for({f"k{i}" for i in range(26)})
    before = (tmp_path / "dovecot-keywords").read_bytes()
    with pytest.raises(StoreError, match="at most 26"):
        kf.letters_for({"one-too-many"})
    assert (tmp_path / "dovecot-keywords").read_bytes() == before
