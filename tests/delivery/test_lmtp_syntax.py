"""LMTP command lines parsed without I/O (imapd.delivery.syntax), as tables."""

from __future__ import annotations

import pytest

from imapd.delivery.syntax import (Lhlo, MailFrom, RcptTo, Simple, SyntaxProblem, Vrfy,
                                   parse_command)

GOOD = [
    (b"LHLO mta.example.org", Lhlo("mta.example.org")),
    (b"lhlo x", Lhlo("x")),
    (b"MAIL FROM:<a@b.example>", MailFrom("a@b.example")),
    (b"MAIL FROM: <a@b>", MailFrom("a@b")),
    (b"MAIL FROM:<>", MailFrom("")),
    (b"mail from:<a@b> SIZE=1234 BODY=8BITMIME", MailFrom("a@b", 1234, "8BITMIME")),
    (b"MAIL FROM:<a@b> body=7bit", MailFrom("a@b", None, "7BIT")),
    (b"MAIL FROM:<@relay.example:a@b>", MailFrom("a@b")),
    (b'MAIL FROM:<"odd name"@b>', MailFrom('"odd name"@b')),
    (b"RCPT TO:<alice@example.org>", RcptTo("alice@example.org")),
    (b"RCPT TO:<alice>", RcptTo("alice")),
    (b"RCPT TO:<alice+lists@example.org>", RcptTo("alice+lists@example.org")),
    (b"VRFY alice", Vrfy("alice")),
    (b"DATA", Simple("DATA")),
    (b"rset", Simple("RSET")),
    (b"NOOP anything", Simple("NOOP")),
    (b"QUIT", Simple("QUIT")),
]

BAD = [
    (b"", 500, "5.5.1"),
    (b"HELO x", 500, "5.5.1"),
    (b"EHLO x", 500, "5.5.1"),
    (b"LHLO", 501, "5.5.4"),
    (b"MAIL TO:<a@b>", 501, "5.5.4"),
    (b"MAIL FROM:a@b", 501, "5.1.3"),
    (b"MAIL FROM:<a@b", 501, "5.1.3"),
    (b"MAIL FROM:<a@b> SIZE=x", 501, "5.5.4"),
    (b"MAIL FROM:<a@b> SIZE", 501, "5.5.4"),
    (b"MAIL FROM:<a@b> BODY=BINARYMIME", 555, "5.5.4"),
    (b"MAIL FROM:<a@b> SMTPUTF8", 555, "5.5.4"),
    (b"MAIL FROM:<a@b> =x", 501, "5.5.4"),
    (b"RCPT TO:<>", 501, "5.1.3"),
    (b"RCPT TO:<a b@c>", 501, "5.1.3"),
    (b"RCPT TO:<a@b> NOTIFY=NEVER", 555, "5.5.4"),
    (b"RCPT FROM:<a@b>", 501, "5.5.4"),
    (b"RCPT TO:<\xff@b>", 501, "5.1.3"),
    (b"DATA now", 501, "5.5.4"),
    (b"STARTTLS", 500, "5.5.1"),
]


@pytest.mark.parametrize("line,expected", GOOD)
def test_good_lines(line, expected):
    """Each line parses to its typed command."""
    assert parse_command(line) == expected


@pytest.mark.parametrize("line,code,status", BAD)
def test_bad_lines(line, code, status):
    """Each bad line gives its reply code and enhanced status."""
    with pytest.raises(SyntaxProblem) as info:
        parse_command(line)
    assert (info.value.code, info.value.status) == (code, status)
