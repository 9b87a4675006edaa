"""
CATENATE (RFC 4469): APPEND builds a message from TEXT literals and IMAP
URLs (RFC 5092) naming messages or parts on this server, all or nothing,
also inside MULTIAPPEND; on each store.

The RFC's examples (Appendix A) are replayed with their literals and URLs;
only the UIDVALIDITY is ours (a new mailbox cannot have 385759045).
"""

import dataclasses
import re

import pytest

BOUNDARY = b"------------030308070208000400050907"

# The draft of RFC 4469 examples 1 and 2 (its UID is 20): multipart/mixed
# with 1. text/plain and 2. application/x-zip-compressed.
DRAFT_HEADER = (
    b"Return-Path: <bar@example.org>\r\n"
    b"Message-ID: <419399E1.6000505@example.org>\r\n"
    b"Date: Thu, 12 Nov 2004 16:57:05 +0000\r\n"
    b"From: Bob Ar <bar@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"To: foo@example.net\r\n"
    b"Subject: About our holiday trip\r\n"
    b'Content-Type: multipart/mixed;\r\n boundary="' + BOUNDARY + b'"\r\n'
    b"\r\n"
)
PART1_MIME = b"Content-Type: text/plain; charset=us-ascii; format=flowed\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
PART1_BODY = b"Our travel agent has sent the old schedule.\r\n\r\nCheers,\r\nBob"
PART2_MIME = (
    b'Content-Type: application/x-zip-compressed;\r\n name="schedule.zip"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n"
)
PART2_BODY = b"UEsDBBQAAAAIAAAAAAAAAAAAAAAAAAAAAAAA"
DRAFT = (
    DRAFT_HEADER
    + b"--" + BOUNDARY + b"\r\n" + PART1_MIME + PART1_BODY
    + b"\r\n--" + BOUNDARY + b"\r\n" + PART2_MIME + PART2_BODY
    + b"\r\n--" + BOUNDARY + b"--\r\n"
)
# RFC 4469 example 1's UID 30: a whole message put in as a part.
NEW_ATTACHMENT = b"Content-Type: text/plain\r\n\r\nThe new schedule.\r\n"

SEP = b"\r\n--" + BOUNDARY + b"\r\n"      # the TEXT {42} of the examples
END = b"\r\n--" + BOUNDARY + b"--\r\n"    # the TEXT {44}


def filler(n: int) -> bytes:
    return b"Subject: filler %d\r\n\r\nfiller\r\n" % n


def append_raw(conv, mailbox: str, data: bytes, tag: str = "p1") -> tuple[int, int]:
    """APPEND one message with a non-synchronizing literal; return (uidvalidity, uid)."""
    conv.send(f"{tag} APPEND {mailbox} {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    last = conv.lines()[-1]
    m = re.fullmatch(rf"{tag} OK \[APPENDUID (\d+) (\d+)\] APPEND completed", last)
    assert m, last
    return int(m.group(1)), int(m.group(2))


def fill_to(conv, mailbox: str, wanted: dict[int, bytes]) -> int:
    """Append fillers and C{wanted} messages so that each lands on its UID; return UIDVALIDITY."""
    uidvalidity = 0
    for uid in range(1, max(wanted) + 1):
        uidvalidity, got = append_raw(conv, mailbox, wanted.get(uid, filler(uid)))
        assert got == uid
    return uidvalidity


def body_of(conv, mailbox: str, uid: int) -> tuple[bytes, bytes]:
    """(FLAGS list, BODY[]) of one message, read with EXAMINE + UID FETCH."""
    conv.ok(f"e1 EXAMINE {mailbox}")
    conv.send(b"f1 UID FETCH %d (FLAGS BODY.PEEK[])\r\n" % uid)
    raw = conv.output()
    m = re.search(rb"FLAGS \(([^)]*)\) BODY\[\] \{(\d+)\}\r\n", raw)
    assert m, raw[:300]
    start = m.end()
    return m.group(1), raw[start : start + int(m.group(2))]


def continue_with(conv, data: bytes) -> list[str]:
    """Send C{data} (a literal's octets plus the rest of the line) and return the reply lines."""
    conv.send(data)
    return conv.lines()


def test_advertised(authed):
    """RFC 4469 section 2: CATENATE is in the capability list once logged in."""
    assert "CATENATE" in authed.ok("c1 CAPABILITY")[0].split()


def test_rfc4469_example1_replace_attachment(authed, new_conv):
    """Example 1: header, part 1 and new data from URLs and TEXT, with a continuation per literal."""
    authed.ok("c0 CREATE Drafts")
    v = fill_to(authed, "Drafts", {20: DRAFT, 30: NEW_ATTACHMENT})
    base = f"/Drafts;UIDVALIDITY={v}/;UID=20"
    authed.send(
        f'A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL "{base}/;section=HEADER" TEXT {{42}}\r\n'.encode()
    )
    assert authed.lines() == ["+ Ready for literal data"]
    line = f' URL "{base}/;section=1.MIME" URL "{base}/;section=1" TEXT {{42}}\r\n'.encode()
    assert continue_with(authed, SEP + line) == ["+ Ready for literal data"]
    line = f' URL "/Drafts;UIDVALIDITY={v}/;UID=30" TEXT {{44}}\r\n'.encode()
    assert continue_with(authed, SEP + line) == ["+ Ready for literal data"]
    lines = continue_with(authed, END + b")\r\n")
    assert lines == [f"A003 OK [APPENDUID {v} 31] APPEND completed"], lines
    expected = DRAFT_HEADER + SEP + PART1_MIME + PART1_BODY + SEP + NEW_ATTACHMENT + END
    flags, body = body_of(new_conv_logged_in(new_conv), "Drafts", 31)
    assert body == expected
    # \Recent too: nobody selected Drafts since (EXAMINE shows it, as Dovecot does).
    assert set(flags.split()) - {b"\\Recent"} == {b"\\Seen", b"\\Draft", b"$MDNSent"}
    # RFC 4469 section 3: APPEND does not set \Seen on the sources.
    flags, _ = body_of(new_conv_logged_in(new_conv), "Drafts", 20)
    assert b"\\Seen" not in flags


def new_conv_logged_in(new_conv):
    conv = new_conv()
    conv.login()
    return conv


def test_rfc4469_example2_new_text_and_subject(authed, new_conv):
    """Example 2: a new header and text (one TEXT {738}), part 2 by URL with 'Section=', then UID STORE."""
    authed.ok("c0 CREATE Drafts")
    v = fill_to(authed, "Drafts", {20: DRAFT})
    text = (
        DRAFT_HEADER.replace(b"About our holiday trip", b"About our holiday trip (new)")
        + b"--" + BOUNDARY + b"\r\n" + PART1_MIME
        + b"Our travel agent has sent the updated schedule.\r\n\r\nCheers,\r\nBob\r\n--" + BOUNDARY + b"\r\n"
    )
    authed.send(b"A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (TEXT {%d}\r\n" % len(text))
    assert authed.lines() == ["+ Ready for literal data"]
    base = f"/Drafts;UIDVALIDITY={v}/;UID=20"
    line = f' URL "{base}/;Section=2.MIME" URL "{base}/;Section=2" TEXT {{44}}\r\n'.encode()
    assert continue_with(authed, text + line) == ["+ Ready for literal data"]
    assert continue_with(authed, END + b")\r\n") == [f"A003 OK [APPENDUID {v} 21] APPEND completed"]
    authed.ok("s1 SELECT Drafts")
    authed.script(
        """
        C: A004 UID STORE 20 +FLAGS.SILENT (\\Deleted)
        S: A004 OK UID STORE completed
        """
    )
    _, body = body_of(new_conv_logged_in(new_conv), "Drafts", 21)
    assert body == text + PART2_MIME + PART2_BODY + END


def test_rfc4469_example3_strip_attachment(authed, new_conv):
    """Example 3: the attachment is replaced by a short text part (TEXT {255}, as in the RFC)."""
    authed.ok("c0 CREATE Drafts")
    v = fill_to(authed, "Drafts", {21: DRAFT})
    base = f"/Drafts;UIDVALIDITY={v}/;UID=21"
    note = (
        SEP + b'Content-type: text/plain; charset="us-ascii"\r\nContent-transfer-encoding: 7bit\r\n\r\n'
        b"This body part contained a Power Point presentation that was\r\n"
        b"deleted upon your request." + END
    )
    assert len(note) == 255
    authed.send(
        f'A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL "{base}/;section=HEADER" TEXT {{42}}\r\n'.encode()
    )
    assert authed.lines() == ["+ Ready for literal data"]
    line = f' URL "{base}/;section=1.MIME" URL "{base}/;section=1" TEXT {{255}}\r\n'.encode()
    assert continue_with(authed, SEP + line) == ["+ Ready for literal data"]
    assert continue_with(authed, note + b")\r\n") == [f"A003 OK [APPENDUID {v} 22] APPEND completed"]
    _, body = body_of(new_conv_logged_in(new_conv), "Drafts", 22)
    assert body == DRAFT_HEADER + SEP + PART1_MIME + PART1_BODY + note


def test_rfc4469_example4_badurl_appends_nothing(authed):
    """
    Example 4: one URL names a part that does not exist.  As the note
    after the example allows, the server checks URLs as they arrive and
    sends the tagged NO [BADURL url] in place of the continuation for the
    next TEXT literal; the client sends nothing more, Sent stays empty and
    the connection carries on with the next command.
    """
    authed.ok("c0 CREATE Sent")
    v = fill_to(authed, "INBOX", {3: DRAFT})
    digest = b"Subject: Digest of the mailing list for today\r\nContent-Type: multipart/digest;\r\n boundary=\"x\"\r\n\r\n--x\r\n"
    authed.send(b"A003 APPEND Sent (\\Seen $MDNSent) CATENATE (TEXT {%d}\r\n" % len(digest))
    assert authed.lines() == ["+ Ready for literal data"]
    bad = f"/INBOX;UIDVALIDITY={v}/;UID=3/;section=1.5.9"
    out = continue_with(
        authed,
        digest + f' URL "/INBOX;UIDVALIDITY={v}/;UID=1" TEXT {{7}}\r\n'.encode(),
    )
    assert out == ["+ Ready for literal data"]
    out = continue_with(authed, f'\r\n--x\r\n URL "{bad}" TEXT {{7}}\r\n'.encode())
    # Erratum 4046: the URL in BADURL is bare, not a quoted string.
    assert out == [f"A003 NO [BADURL {bad}] No such section"], out
    authed.script(
        """
        C: s1 STATUS Sent (MESSAGES)
        S: * STATUS Sent (MESSAGES 0)
        S: s1 OK STATUS completed
        """
    )


def test_badurl_before_nonsync_literal(authed):
    """
    A bad URL on a line that ends in a non-synchronizing literal cannot be
    refused there (the octets are already on their way); the server
    answers NO [BADURL url] in place of the next synchronizing literal's
    continuation.  (Without any later synchronizing literal the answer
    comes when the command is complete: see test_bad_urls.)
    """
    authed.ok("c0 CREATE Sent")
    v = fill_to(authed, "INBOX", {3: DRAFT})
    bad = f"/INBOX;UIDVALIDITY={v}/;UID=113330/;section=1.5.9"
    authed.send(
        f'A003 APPEND Sent CATENATE (TEXT {{4+}}\r\nab\r\n URL "/INBOX/;UID=1" URL "{bad}" TEXT {{4+}}\r\n'.encode()
        + f'\r\n\r\n URL "/INBOX/;UID=2" TEXT {{4}}\r\n'.encode()
    )
    assert authed.lines() == [f"A003 NO [BADURL {bad}] No such message"]
    authed.script(
        """
        C: s1 STATUS Sent (MESSAGES)
        S: * STATUS Sent (MESSAGES 0)
        S: s1 OK STATUS completed
        """
    )


@pytest.mark.parametrize(
    "url, reason",
    [
        ("/INBOX;UIDVALIDITY={bad_v}/;UID=1", "UIDVALIDITY mismatch"),
        ("/INBOX;UIDVALIDITY={v}/;UID=9", "No such message"),
        ("/INBOX/;UID=1/;SECTION=4", "No such section"),
        ("/INBOX/;UID=1/;SECTION=BOGUS", "Invalid section"),
        ("/Nowhere/;UID=1", "No such mailbox"),
        ("imap://other@example.org/INBOX/;UID=1", "Only URLs relative to this server and user are supported"),
        ("//example.org/INBOX/;UID=1", "Only URLs relative to this server and user are supported"),
        ("/INBOX/;UID=1;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=anonymous", "URLAUTH URLs are for URLFETCH, not CATENATE"),
        ("/INBOX", "URL does not name a message"),
        ("/INBOX/;UID=0", "Invalid UID"),
        (";UID=1", "No mailbox selected for a relative URL"),
        ("/IN BOX/;UID=1", "Invalid character in URL"),
    ],
)
def test_bad_urls(authed, url, reason):
    """Each kind of unusable URL is a NO [BADURL <url>] and nothing is appended."""
    v = fill_to(authed, "INBOX", {1: b"Subject: one\r\n\r\nbody\r\n"})
    url = url.format(v=v, bad_v=v + 1)
    q = url.replace("\\", "\\\\").replace('"', '\\"')
    authed.send(f'a1 APPEND INBOX CATENATE (TEXT {{3+}}\r\nabc URL "{q}")\r\n'.encode())
    shown = url.replace(" ", "%20")
    assert authed.lines() == [f"a1 NO [BADURL {shown}] {reason}"]
    authed.script(
        """
        C: s1 STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 1)
        S: s1 OK STATUS completed
        """
    )


def test_relative_to_selected_and_partial(selected, new_conv):
    """';UID=n' means the selected mailbox (base imap://user@server/mailbox); PARTIAL cuts octets."""
    v = fill_to(selected, "INBOX", {1: DRAFT})
    selected.send(
        b'a1 APPEND INBOX CATENATE (URL ";UID=1/;SECTION=HEADER" URL ";uid=1/;section=1/;partial=4.6"'
        b' URL "/INBOX/;UID=1/;SECTION=1/;PARTIAL=7")\r\n'
    )
    assert selected.lines()[-1] == f"a1 OK [APPENDUID {v} 2] APPEND completed"
    _, body = body_of(new_conv_logged_in(new_conv), "INBOX", 2)
    assert body == DRAFT_HEADER + PART1_BODY[4:10] + PART1_BODY[7:]


@pytest.mark.parametrize("encoded", ["Entw&APw-rfe", "Entw%C3%BCrfe", "Entw%26APw-rfe"])
def test_mailbox_names_in_urls(authed, new_conv, encoded):
    """Mailbox names in URLs: modified UTF-7 (RFC 2192 style) or percent-encoded UTF-8 (RFC 5092)."""
    authed.ok("c0 CREATE Entw&APw-rfe")
    v = fill_to(authed, "Entw&APw-rfe", {1: b"Subject: x\r\n\r\nhello\r\n"})
    authed.send(f'a1 APPEND INBOX CATENATE (URL "/{encoded};UIDVALIDITY={v}/;UID=1")\r\n'.encode())
    assert authed.lines()[-1].startswith("a1 OK [APPENDUID ")
    _, body = body_of(new_conv_logged_in(new_conv), "INBOX", 1)
    assert body == b"Subject: x\r\n\r\nhello\r\n"


def test_in_multiappend_all_or_nothing(authed):
    """RFC 4469 with RFC 3502: CATENATE next to a literal; one bad URL in any message appends none."""
    fill_to(authed, "INBOX", {1: b"Subject: one\r\n\r\nbody\r\n"})
    authed.ok("c0 CREATE Box")
    plain = b"Subject: plain\r\n\r\nx\r\n"
    authed.send(
        b'a1 APPEND Box (\\Flagged) {%d+}\r\n%s CATENATE (URL "/INBOX/;UID=1" TEXT {2+}\r\nhi)'
        b' (\\Seen) CATENATE (URL "/INBOX/;UID=1/;SECTION=TEXT")\r\n' % (len(plain), plain)
    )
    last = authed.lines()[-1]
    assert re.fullmatch(r"a1 OK \[APPENDUID \d+ 1:3\] APPEND completed", last), last
    authed.send(
        b'a2 APPEND Box {%d+}\r\n%s CATENATE (URL "/INBOX/;UID=7")\r\n' % (len(plain), plain)
    )
    assert authed.lines() == ["a2 NO [BADURL /INBOX/;UID=7] No such message"]
    authed.ok("s1 SELECT Box")
    authed.script(
        """
        C: f1 FETCH 1:* (FLAGS RFC822.SIZE)
        S: * 1 FETCH (FLAGS (\\Flagged{{( \\\\Recent)?}}) RFC822.SIZE 21)
        S: * 2 FETCH (FLAGS ({{(\\\\Recent)?}}) RFC822.SIZE 24)
        S: * 3 FETCH (FLAGS (\\Seen{{( \\\\Recent)?}}) RFC822.SIZE 6)
        S: f1 OK FETCH completed
        """
    )


@pytest.fixture
def small(server):
    """A server whose APPENDLIMIT is 100 octets."""
    server.limits = dataclasses.replace(server.limits, max_literal=100)
    return server


def test_toobig(small, new_conv):
    """RFC 4469 section 4.2: a catenated message over the APPENDLIMIT is NO [TOOBIG]."""
    conv = new_conv_logged_in(new_conv)
    fill_to(conv, "INBOX", {1: b"Subject: x\r\n\r\n" + b"y" * 60 + b"\r\n"})
    conv.send(b'a1 APPEND INBOX CATENATE (URL "/INBOX/;UID=1" TEXT {30+}\r\n' + b"z" * 30 + b")\r\n")
    assert conv.lines() == ["a1 NO [TOOBIG] Catenated message is too large"]
    conv.send(b'a2 APPEND INBOX CATENATE (URL "/INBOX/;UID=1" TEXT {3+}\r\nzzz)\r\n')
    assert conv.lines()[-1].startswith("a2 OK [APPENDUID ")


def test_empty_result_is_refused(authed):
    """A CATENATE whose parts are all empty would be an empty message: NO, nothing appended."""
    fill_to(authed, "INBOX", {1: b"Subject: x\r\n\r\n"})
    authed.send(b'a1 APPEND INBOX CATENATE (URL "/INBOX/;UID=1/;SECTION=TEXT" TEXT {0+}\r\n)\r\n')
    assert authed.lines() == ["a1 NO Cannot append an empty message"]


class SlowStore:
    """Makes C{session.run} wait until the test says so, like the thread pool does."""

    def __init__(self, conv) -> None:
        self.calls: list = []
        conv.proto.run = self.run

    def run(self, fn, *args, **kwargs):
        from twisted.internet import defer

        d = defer.Deferred()
        self.calls.append((d, fn, args, kwargs))
        return d

    def finish_one(self) -> None:
        from twisted.python.failure import Failure

        d, fn, args, kwargs = self.calls.pop(0)
        try:
            result = fn(*args, **kwargs)
        except Exception:
            d.errback(Failure())
        else:
            d.callback(result)


def test_input_waits_for_the_url_check(authed):
    """
    While URLs are checked in the storage pool, no continuation goes out and
    input is held back; octets sent early are then parsed in order.
    """
    fill_to(authed, "INBOX", {1: b"Subject: one\r\n\r\nbody\r\n"})
    slow = SlowStore(authed)
    authed.send(b'a1 APPEND INBOX CATENATE (URL "/INBOX/;UID=1" TEXT {2}\r\n')
    assert authed.lines() == [] and len(slow.calls) == 1
    # A client that does not wait: its octets are held, not parsed yet.
    authed.send(b"hi)\r\n")
    assert authed.lines() == [] and len(slow.calls) == 1
    slow.finish_one()  # the URL check: fine, so the continuation goes out
    assert authed.lines() == ["+ Ready for literal data"]
    # The APPEND itself, from the held octets (assembling, then committing).
    while slow.calls:
        slow.finish_one()
    assert authed.lines()[-1].startswith("a1 OK [APPENDUID ")


def test_refused_literal_then_next_command(authed):
    """After NO [BADURL] in place of a continuation, the next line is a new command."""
    fill_to(authed, "INBOX", {1: b"Subject: one\r\n\r\nbody\r\n"})
    slow = SlowStore(authed)
    authed.send(b'a1 APPEND INBOX CATENATE (URL "/INBOX/;UID=5" TEXT {2}\r\n')
    assert authed.lines() == []
    slow.finish_one()
    assert authed.lines() == ["a1 NO [BADURL /INBOX/;UID=5] No such message"]
    authed.send(b"n1 NOOP\r\n")
    assert authed.lines() == ["n1 OK NOOP completed"]


def test_missing_target_is_trycreate_before_urls(authed):
    """
    RFC 3501 section 6.3.11: APPEND to a mailbox that does not exist is NO
    [TRYCREATE], the code the client acts on (it creates the mailbox and
    tries again), even when a URL is bad too: the target is checked first,
    as Dovecot does, both in the early check before a continuation (RFC
    4469 Appendix A) and when the whole command is in.
    """
    fill_to(authed, "INBOX", {1: b"Subject: one\r\n\r\nbody\r\n"})
    # Early: in place of the continuation for the TEXT literal.
    authed.send(b'a1 APPEND Nowhere CATENATE (URL "/INBOX/;UID=9" TEXT {2}\r\n')
    out = authed.lines()
    assert len(out) == 1 and out[0].startswith("a1 NO [TRYCREATE] "), out
    # Late: no synchronizing literal, the whole command at once.
    authed.send(b'a2 APPEND Nowhere CATENATE (TEXT {3+}\r\nabc URL "/INBOX/;UID=9")\r\n')
    out = authed.lines()
    assert len(out) == 1 and out[0].startswith("a2 NO [TRYCREATE] "), out
    # Good URLs, missing target: TRYCREATE as well, and nothing created.
    authed.send(b'a3 APPEND Nowhere CATENATE (URL "/INBOX/;UID=1")\r\n')
    out = authed.lines()
    assert len(out) == 1 and out[0].startswith("a3 NO [TRYCREATE] "), out
    # A bad URL into an existing mailbox is still BADURL.
    authed.send(b'a4 APPEND INBOX CATENATE (URL "/INBOX/;UID=9" TEXT {2}\r\n')
    assert authed.lines() == ["a4 NO [BADURL /INBOX/;UID=9] No such message"]
    assert not any("Nowhere" in l for l in authed.ok('l1 LIST "" "*"'))


def test_plain_append_missing_target_is_trycreate(authed):
    """Without CATENATE too, after the target check moved to the start of APPEND: TRYCREATE."""
    authed.send(b"a1 APPEND Nowhere {3+}\r\nabc\r\n")
    out = authed.lines()
    assert len(out) == 1 and out[0].startswith("a1 NO [TRYCREATE] "), out
