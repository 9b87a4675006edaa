# -*- test-case-name: tests.storage.test_storage_location -*-
"""Tests for L{storage.location}: Dovecot mail_location strings."""

from __future__ import annotations

import pytest

from storage.errors import StoreError
from storage.location import LocationError, MailLocation, parse_location


def test_home_maildir():
    """C{~} is the home directory."""
    assert parse_location("maildir:~/Maildir", "joe", "/home/joe") == MailLocation(
        "maildir", "/home/joe/Maildir"
    )


def test_variables():
    """%u, %n, %d, %h, %% and the long forms are expanded."""
    loc = parse_location(
        "maildir:/srv/mail/%d/%n:INDEX=/var/index/%u:CONTROL=%h/ctl:X=100%%",
        "joe@example.org",
        "/home/joe/",
    )
    assert loc.root == "/srv/mail/example.org/joe"
    assert loc.index == "/var/index/joe@example.org"
    assert loc.option("control") == "/home/joe/ctl"
    assert loc.option("X") == "100%"
    loc = parse_location("maildir:/m/%{domain}/%{username}", "bob", None)
    assert loc.root == "/m//bob"


def test_options_and_layout():
    """Options are kept in order; LAYOUT=maildir++ is accepted."""
    loc = parse_location("maildir:~/Maildir:INDEX=/var/index/%u:LAYOUT=maildir++:FULLDIRNAME", "u", "/h")
    assert loc.index == "/var/index/u"
    assert loc.options == (("LAYOUT", "maildir++"), ("FULLDIRNAME", ""))


def test_unsupported_layout():
    """LAYOUT=fs is refused with a message that says what is supported."""
    with pytest.raises(LocationError, match="LAYOUT=fs is not supported.*maildir\\+\\+"):
        parse_location("maildir:~/Maildir:LAYOUT=fs", "u", "/h")


def test_mbox():
    """mbox locations parse, with their INBOX."""
    loc = parse_location("mbox:~/mail:INBOX=/var/mail/%u", "joe", "/home/joe")
    assert (loc.driver, loc.root, loc.inbox) == ("mbox", "/home/joe/mail", "/var/mail/joe")


def test_escaped_colon():
    """C{::} is a literal colon in a path."""
    assert parse_location("maildir:/srv/a::b", "u", None).root == "/srv/a:b"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("/home/u/Maildir", "does not name a driver"),
        ("imap:/x", "unknown driver"),
        ("maildir:", "no mail root"),
        ("maildir:~/Maildir", "has no home"),
        ("maildir:/m/%z", "unknown mail_location variable"),
    ],
)
def test_errors(spec, message):
    """Unusable locations raise a LocationError (a StoreError) saying why."""
    with pytest.raises(LocationError, match=message) as info:
        parse_location(spec, "u", None)
    assert isinstance(info.value, StoreError)
