# -*- test-case-name: tests.storage.maildir.test_maildir_layout -*-
"""Tests for L{storage.maildir.layout}: names, escapes and validation."""

from __future__ import annotations

import os

import pytest

from storage.errors import InvalidMailboxName
from storage.maildir.layout import MaildirLayout, normalize


@pytest.mark.parametrize(
    "name, dirname",
    [
        ("Archive", ".Archive"),
        ("Archive/2024", ".Archive.2024"),
        ("Ünïcode", ".&ANw-n&AO8-code"),
        ("A&B/C", ".A&-B.C"),
        ("INBOX/Sub", ".INBOX.Sub"),
    ],
)
def test_paths_and_back(tmp_path, name, dirname):
    """Names map to Maildir++ directories in modified UTF-7, and back."""
    layout = MaildirLayout(str(tmp_path))
    assert layout.path(name) == os.path.join(str(tmp_path), dirname)
    assert layout.name_of(dirname) == name


def test_inbox_is_root(tmp_path):
    """INBOX is the root Maildir unless an INBOX path is configured."""
    assert MaildirLayout(str(tmp_path)).path("INBOX") == str(tmp_path)
    assert MaildirLayout(str(tmp_path), "/var/mail/x").path("INBOX") == "/var/mail/x"


@pytest.mark.parametrize(
    "dirname",
    [".", "..", "..deleted-1", ".a..b", ".&Jjo", ".&AGE-", "cur", ".a.", "..creating-x"],
)
def test_not_mailboxes(dirname):
    """Temporary, malformed and non-dot entries are not mailboxes."""
    assert MaildirLayout.name_of(dirname) is None


@pytest.mark.parametrize(
    "name, reason",
    [
        ("", "empty"),
        ("/etc", "starts with '/'"),
        ("~root", "starts with '~'"),
        ("a//b", "empty hierarchy level"),
        ("a/..", "'..' level"),
        ("a/.", "'.' level"),
        ("v1.2", "contains '.'"),
        ("nul\x00", "control character"),
        ("esc\x1b", "control character"),
        ("c1\x85", "control character"),
    ],
)
def test_refused(name, reason):
    """Each refused name says why."""
    with pytest.raises(InvalidMailboxName, match=reason):
        normalize(name)


def test_inbox_normalized():
    """The first level 'inbox' in any case is INBOX; other levels keep case."""
    assert normalize("iNbOx") == "INBOX"
    assert normalize("inbox/Inbox") == "INBOX/Inbox"
    assert normalize("Inboxes") == "Inboxes"
