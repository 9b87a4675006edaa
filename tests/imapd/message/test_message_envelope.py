# -*- test-case-name: tests.imapd.message.test_message_envelope -*-
"""
Tests for ENVELOPE (RFC 3501 section 7.4.2) and the tolerant address
parser behind it.
"""

import pytest

from imapd.message import Message
from imapd.message._address import Address, parse_addresses


def test_rfc3501_example():
    """The FETCH ENVELOPE example of RFC 3501 section 7.4.2 (sender/reply-to copy from)."""
    raw = (b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
           b"From: Terry Gray <gray@cac.washington.edu>\r\n"
           b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
           b"To: imap@cac.washington.edu\r\n"
           b"cc: minutes@CNRI.Reston.VA.US,\r\n"
           b"    John Klensin <KLENSIN@MIT.EDU>\r\n"
           b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
           b"\r\nbody\r\n")
    assert Message(raw).envelope() == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" '
        b'"IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")'
        b'("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
        b'"<B27397-0100000@cac.washington.edu>")')


def test_subject_raw_and_unfolded():
    """The subject is the raw value, unfolded, with encoded words kept."""
    m = Message(b"Subject: =?utf-8?q?caf=C3=A9?=\r\n  again\r\n\r\n")
    assert m.envelope().startswith(b'(NIL "=?utf-8?q?caf=C3=A9?=  again" NIL')


def test_eight_bit_subject_is_literal():
    """A header value with 8-bit bytes goes out as a literal."""
    m = Message(b"Subject: caf\xe9\r\n\r\n")
    assert m.envelope().startswith(b"(NIL {4}\r\ncaf\xe9 NIL")


def test_empty_sender_defaults_to_from():
    """An empty Sender or Reply-To is replaced by From (RFC 3501 section 7.4.2)."""
    m = Message(b"From: a@b\r\nSender:\r\nReply-To: r@s\r\n\r\n")
    env = m.envelope()
    assert env == (b'(NIL NIL ((NIL NIL "a" "b")) ((NIL NIL "a" "b")) '
                   b'((NIL NIL "r" "s")) NIL NIL NIL NIL NIL)')


def test_first_occurrence_wins():
    """With a repeated field the first one is used."""
    m = Message(b"Subject: one\r\nSubject: two\r\n\r\n")
    assert m.envelope().startswith(b'(NIL "one"')


def test_in_reply_to_and_message_id():
    """In-Reply-To and Message-ID are sent raw."""
    m = Message(b"In-Reply-To: <a@b>\r\nMessage-ID:  <c@d> \r\n\r\n")
    assert m.envelope().endswith(b' "<a@b>" "<c@d>")')


def test_group_syntax():
    """Groups become start and end markers around their members."""
    m = Message(b"To: A Group:Ed Jones <c@a.test>,joe@where.test;, x@y\r\n\r\n")
    env = m.envelope()
    assert (b'((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")'
            b'(NIL NIL "joe" "where.test")(NIL NIL NIL NIL)(NIL NIL "x" "y"))') in env


@pytest.mark.parametrize("value, expected", [
    (b'"Joe Q. Public" <john.q.public@example.com>',
     [Address(b"Joe Q. Public", None, b"john.q.public", b"example.com")]),
    (b"Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
     [Address(b"Pete", None, b"pete", b"silly.test")]),
    (b"<@a.test,@b.test:user@c.test>",
     [Address(None, b"@a.test,@b.test", b"user", b"c.test")]),
    (b"user@host (Real Name)", [Address(b"Real Name", None, b"user", b"host")]),
    (b"undisclosed-recipients:;",
     [Address(None, None, b"undisclosed-recipients", None), Address(None, None, None, None)]),
    (b"foo", [Address(None, None, b"foo", b"MISSING_DOMAIN")]),
    (b"Name <@host>", [Address(b"Name", None, b"MISSING_MAILBOX", b"host")]),
    (b"<>", []),
    (b"a@b,,c@d", [Address(None, None, b"a", b"b"), Address(None, None, b"c", b"d")]),
    (b'"unterminated <x@y>', [Address(None, None, b"unterminated <x@y>", b"MISSING_DOMAIN")]),
    (b"Broken <a@b", [Address(b"Broken", None, b"a", b"b")]),
    (b"=?iso-8859-1?q?J=F6rg?= <j@x>", [Address(b"=?iso-8859-1?q?J=F6rg?=", None, b"j", b"x")]),
    (b"G: a@b", [Address(None, None, b"G", None), Address(None, None, b"a", b"b"),
                 Address(None, None, None, None)]),
])
def test_parse_addresses(value, expected):
    """Address parsing per RFC 5322 section 3.4, degrading like Dovecot on broken input."""
    assert parse_addresses(value) == expected


def test_missing_domain_is_not_a_group_marker():
    """A NIL host would mean 'group start' (RFC 3501 section 7.4.2), so a missing domain is filled."""
    env = Message(b"From: root\r\n\r\n").envelope()
    assert b'((NIL NIL "root" "MISSING_DOMAIN"))' in env


@pytest.mark.parametrize("value, expected", [
    (b"J. R. Smith <a@b>", [Address(b"J. R. Smith", None, b"a", b"b")]),
    (b"spamassassin.taint.org <y@x>", [Address(b"spamassassin.taint.org", None, b"y", b"x")]),
    (b"a@b.c <a@b.c>", [Address(b"a@b.c", None, b"a", b"b.c")]),
    (b"ILUG (Request) <ilug@linux.ie>", [Address(b"ILUG", None, b"ilug", b"linux.ie")]),
    (b"Big Bug bb@bug.com", [Address(b"Big Bug", None, b"bb", b"bug.com")]),
    (b"tim@x.com concierge@x.com",
     [Address(None, None, b"tim", b"x.com"), Address(None, None, b"concierge", b"x.com")]),
    (b"a@b@c.com", [Address(None, None, b"a@b", b"c.com")]),
    (b'"" <>', []),
])
def test_parse_addresses_mistakes(value, expected):
    """Mistakes from the corpus: names without quotes or brackets, missing commas, two '@'."""
    assert parse_addresses(value) == expected


def test_nul_bytes_never_reach_the_wire():
    """RFC 3501 forbids NUL in literals, so a NUL in a header value is sent as 0x80."""
    env = Message(b"Subject: a\x00b\r\n\r\n").envelope()
    assert b"\x00" not in env
    assert b"{3}\r\na\x80b" in env
