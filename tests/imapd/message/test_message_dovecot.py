# -*- test-case-name: tests.imapd.message.test_message_dovecot -*-
"""
The ENVELOPE and BODYSTRUCTURE vectors of Dovecot's own unit tests
(src/lib-imap/test-imap-envelope.c and test-imap-bodystructure.c, which
copy imaptest's), run against L{imapd.message.Message} with the messages
converted to CRLF as the server presents them.  Matching them byte for
byte is the claim "degrades the way Dovecot does" made testable.
"""

import pytest

from imapd.message import Message


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


ENVELOPES = [
    ("Message-ID: <msg@id>\n"
     "In-Reply-To: <reply@to.id>\n"
     "Date: Thu, 15 Feb 2007 01:02:03 +0200\n"
     "Subject: subject header\n"
     "From: From Real <fromuser@fromdomain.org>\n"
     "To: To Real <touser@todomain.org>\n"
     "Cc: Cc Real <ccuser@ccdomain.org>\n"
     "Bcc: Bcc Real <bccuser@bccdomain.org>\n"
     "Sender: Sender Real <senderuser@senderdomain.org>\n"
     "Reply-To: ReplyTo Real <replytouser@replytodomain.org>\n"
     "\n"
     "body\n",
     '"Thu, 15 Feb 2007 01:02:03 +0200" "subject header" '
     '(("From Real" NIL "fromuser" "fromdomain.org")) '
     '(("Sender Real" NIL "senderuser" "senderdomain.org")) '
     '(("ReplyTo Real" NIL "replytouser" "replytodomain.org")) '
     '(("To Real" NIL "touser" "todomain.org")) '
     '(("Cc Real" NIL "ccuser" "ccdomain.org")) '
     '(("Bcc Real" NIL "bccuser" "bccdomain.org")) '
     '"<reply@to.id>" "<msg@id>"'),
    ("Date: Thu, 15 Feb 2007 01:02:03 +0200\n"
     "From: user@domain\n"
     "\n"
     "body\n",
     '"Thu, 15 Feb 2007 01:02:03 +0200" NIL '
     '((NIL NIL "user" "domain")) ((NIL NIL "user" "domain")) '
     '((NIL NIL "user" "domain")) NIL NIL NIL NIL NIL'),
    ("Date: Thu, 15 Feb 2007 01:02:03 +0200\n"
     "From: user@domain (Real Name)\n"
     "To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\n"
     "Cc: group:;, group2: (foo) ;\n"
     "\n"
     "body\n",
     '"Thu, 15 Feb 2007 01:02:03 +0200" NIL '
     '(("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) '
     '(("Real Name" NIL "user" "domain")) '
     '((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")(NIL NIL "g2" "d2.org")(NIL NIL NIL NIL)'
     '(NIL NIL "group2" NIL)(NIL NIL "g3" "d3.org")(NIL NIL NIL NIL)) '
     '((NIL NIL "group" NIL)(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL NIL NIL)) '
     'NIL NIL NIL'),
    ("Date: Thu, 15 Feb 2007 01:02:03 +0200\n"
     "From: user@domain (Real Name)\n"
     "Sender: \n"
     "Reply-To: \n"
     "\n"
     "body\n",
     '"Thu, 15 Feb 2007 01:02:03 +0200" NIL '
     '(("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) '
     '(("Real Name" NIL "user" "domain")) NIL NIL NIL NIL NIL'),
    ("Date: Thu, 15 Feb 2007 01:02:03 +0200\n"
     "From: <@route:user@domain>\n"
     "\n"
     "body\n",
     '"Thu, 15 Feb 2007 01:02:03 +0200" NIL '
     '((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) '
     '((NIL "@route" "user" "domain")) NIL NIL NIL NIL NIL'),
]


@pytest.mark.parametrize("message, envelope", ENVELOPES)
def test_dovecot_envelopes(message, envelope):
    """ENVELOPE matches Dovecot's test-imap-envelope.c vectors exactly."""
    assert Message(_crlf(message)).envelope() == b"(" + envelope.encode() + b")"


BODYSTRUCTURE_MESSAGE = (
    "From: user@domain.org\n"
    "Date: Sat, 24 Mar 2007 23:00:00 +0200\n"
    "Mime-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"foo\n"
    " bar\"\n"
    "\n"
    "Root MIME prologue\n"
    "\n"
    "--foo bar\n"
    "Content-Type: text/x-myown; charset=us-ascii; foo=\"quoted\\\"string\"\n"
    "Content-ID: <foo@example.com>\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "Content-Disposition: inline; foo=bar\n"
    "Content-Description: hellodescription\n"
    "Content-Language: en, fi, se\n"
    "Content-Location: http://example.com/test.txt\n"
    "\n"
    "hello\n"
    "\n"
    "--foo bar\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: sub@domain.org\n"
    "To: sub-to1@domain.org, sub-to2@domain.org\n"
    "Date: Sun, 12 Aug 2012 12:34:56 +0300\n"
    "Subject: submsg\n"
    "Content-Type: multipart/alternative; boundary=\"sub1\"\n"
    "\n"
    "Sub MIME prologue\n"
    "--sub1\n"
    "Content-Type: text/html\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "<p>Hello world</p>\n"
    "\n"
    "--sub1\n"
    "Content-Type: text/plain\n"
    "Content-Transfer-Encoding: ?invalid\n"
    "\n"
    "Hello another world\n"
    "\n"
    "--sub1--\n"
    "Sub MIME epilogue\n"
    "\n"
    "--foo bar--\n"
    "Root MIME epilogue\n"
)

BODYSTRUCTURE = (
    '("text" "x-myown" ("charset" "us-ascii" "foo" "quoted\\"string") "<foo@example.com>" '
    '"hellodescription" "7bit" 7 1 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("inline" ("foo" "bar")) '
    '("en" "fi" "se") "http://example.com/test.txt")'
    '("message" "rfc822" NIL NIL NIL "7bit" 412 ("Sun, 12 Aug 2012 12:34:56 +0300" "submsg" '
    '((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) '
    '((NIL NIL "sub-to1" "domain.org")(NIL NIL "sub-to2" "domain.org")) NIL NIL NIL NIL) '
    '(("text" "html" ("charset" "us-ascii") NIL NIL "8bit" 20 1 NIL NIL NIL NIL)'
    '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 21 1 NIL NIL NIL NIL) "alternative" '
    '("boundary" "sub1") NIL NIL NIL) 21 NIL NIL NIL NIL) "mixed" ("boundary" "foo bar") NIL NIL NIL'
)

BODY = (
    '("text" "x-myown" ("charset" "us-ascii" "foo" "quoted\\"string") "<foo@example.com>" '
    '"hellodescription" "7bit" 7 1)'
    '("message" "rfc822" NIL NIL NIL "7bit" 412 ("Sun, 12 Aug 2012 12:34:56 +0300" "submsg" '
    '((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) '
    '((NIL NIL "sub-to1" "domain.org")(NIL NIL "sub-to2" "domain.org")) NIL NIL NIL NIL) '
    '(("text" "html" ("charset" "us-ascii") NIL NIL "8bit" 20 1)'
    '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 21 1) "alternative") 21) "mixed"'
)


def test_dovecot_bodystructure():
    """BODYSTRUCTURE matches Dovecot's test-imap-bodystructure.c vector exactly."""
    m = Message(_crlf(BODYSTRUCTURE_MESSAGE))
    assert m.bodystructure(True) == b"(" + BODYSTRUCTURE.encode() + b")"


def test_dovecot_body():
    """BODY matches Dovecot's test-imap-bodystructure.c vector exactly."""
    m = Message(_crlf(BODYSTRUCTURE_MESSAGE))
    assert m.bodystructure(False) == b"(" + BODY.encode() + b")"


def test_dovecot_sections():
    """The parts of Dovecot's test message are where its sizes say."""
    m = Message(_crlf(BODYSTRUCTURE_MESSAGE))
    assert m.section((1,), None) == b"hello\r\n"
    assert len(m.section((2,), None)) == 412
    assert m.section((2, 1), None) == b"<p>Hello world</p>\r\n"
    assert m.section((2, 2), None) == b"Hello another world\r\n"
    assert m.section((2,), "HEADER").startswith(b"From: sub@domain.org\r\n")


ADDRESSES = [
    # src/lib-mail/test-message-address.c; Dovecot fills a missing part
    # with MISSING_MAILBOX / MISSING_DOMAIN when it builds an ENVELOPE.
    (b"user@domain", (None, None, b"user", b"domain")),
    (b"<user@domain>", (None, None, b"user", b"domain")),
    (b"foo bar <user@domain>", (b"foo bar", None, b"user", b"domain")),
    (b"\"foo bar\" <user@domain>", (b"foo bar", None, b"user", b"domain")),
    (b"<@route:user@domain>", (None, b"@route", b"user", b"domain")),
    (b"<@route@route2:user@domain>", (None, b"@route,@route2", b"user", b"domain")),
    (b"hello <@route ,@route2:user@domain>", (b"hello", b"@route,@route2", b"user", b"domain")),
    (b"user (hello)", (b"hello", None, b"user", b"MISSING_DOMAIN")),
    (b"hello <user>", (b"hello", None, b"user", b"MISSING_DOMAIN")),
    (b"@domain", (None, None, b"MISSING_MAILBOX", b"domain")),
]


@pytest.mark.parametrize("value, address", ADDRESSES)
def test_dovecot_addresses(value, address):
    """Address parsing matches Dovecot's test-message-address.c vectors."""
    from imapd.message._address import parse_addresses
    assert [tuple(a) for a in parse_addresses(value)] == [address]


def test_dovecot_address_group():
    """Dovecot's group vector: every valid address above inside one group."""
    from imapd.message._address import parse_addresses
    valid = [v for v, a in ADDRESSES if b"MISSING" not in (a[2] + a[3])]
    value = b"group: " + b" , \r\n ".join(valid) + b";"
    got = [tuple(a) for a in parse_addresses(value)]
    assert got[0] == (None, None, b"group", None)
    assert got[-1] == (None, None, None, None)
    assert got[1:-1] == [a for v, a in ADDRESSES if v in valid]
