# -*- test-case-name: tests.storage.maildir.test_maildir_filename -*-
"""Tests for L{storage.maildir.filename}."""

from __future__ import annotations

import pytest

from storage.maildir.filename import MaildirName, size_field


def test_dovecot_name():
    """A Dovecot name: base with size fields, flags and keywords."""
    n = MaildirName.parse("1795428225.M49806P6456.vm,S=1355,W=1391:2,FRc")
    assert n.base == "1795428225.M49806P6456.vm,S=1355,W=1391"
    assert n.system_flags() == {"\\Flagged", "\\Answered"}
    assert n.keyword_letters() == "c"
    assert size_field(n.base, "S") == 1355
    assert size_field(n.base, "W") == 1391


def test_new_file_without_info():
    """Files in new/ usually have no info part."""
    n = MaildirName.parse("1700000000.12345_1.host")
    assert (n.base, n.info, n.letters) == ("1700000000.12345_1.host", None, "")
    assert n.with_letters("S") == "1700000000.12345_1.host:2,S"


@pytest.mark.parametrize(
    "name, base",
    [
        ("msg.abcd", "msg.abcd"),
        ("1234567890.12345_1.mail.example.org:2,S", "1234567890.12345_1.mail.example.org"),
        ("1234.P77Q3.host,U=4711:2,RS", "1234.P77Q3.host,U=4711"),
        ("1234.host\\0572,S=10:2,", "1234.host\\0572,S=10"),
    ],
)
def test_procmail_and_other_names(name, base):
    """Procmail-style and other programs' names keep their base intact."""
    assert MaildirName.parse(name).base == base


def test_unknown_fields_in_base_are_not_flags():
    """C{,U=...} and C{,S=} in the base never count as flags (rule 5)."""
    n = MaildirName.parse("1234.host,U=ABC,S=5:2,S")
    assert n.system_flags() == {"\\Seen"}
    assert size_field(n.base, "W") is None
    assert size_field(n.base, "S") == 5
    assert size_field(n.base, "U") is None


def test_unknown_letters_kept_and_sorted():
    """P and other uppercase letters are kept; letters are written sorted."""
    n = MaildirName.parse("b:2,PSa")
    assert n.unknown_letters() == "P"
    assert n.with_letters("TR" + n.unknown_letters()) == "b:2,PRT"


def test_extra_info_kept():
    """Text after a second comma of the info part is kept on rewrite."""
    n = MaildirName.parse("b:2,S,XYZ")
    assert n.letters == "S"
    assert n.with_letters("F") == "b:2,F,XYZ"


def test_experimental_info():
    """A C{1,} info part carries no flags."""
    n = MaildirName.parse("b:1,whatever")
    assert n.letters == "" and not n.has_flags
    assert n.with_letters("S") == "b:2,S"
