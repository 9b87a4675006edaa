"""
IMAP URL parsing for CATENATE (RFC 5092 relative message-part URLs, as
RFC 4469 section 3 uses them): a table of URLs and what they mean, and
of URLs that must be refused.  No I/O involved.
"""

import pytest

from imapd.catenate import Catenator, badurl_code
from imapd.errors import CommandFailed
from imapd.imapurl import BadUrl, MessageUrl, parse_message_url
from imapd.parser.types import Section

VALID = [
    # RFC 4469 Appendix A, example 1.
    (b"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER",
     MessageUrl("Drafts", 385759045, 20, Section((), "HEADER"))),
    (b"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME",
     MessageUrl("Drafts", 385759045, 20, Section((1,), "MIME"))),
    (b"/Drafts;UIDVALIDITY=385759045/;UID=30", MessageUrl("Drafts", 385759045, 30)),
    # Example 2 writes "Section=".
    (b"/Drafts;UIDVALIDITY=385759045/;UID=20/;Section=2", MessageUrl("Drafts", 385759045, 20, Section((2,)))),
    # Example 4.
    (b"/INBOX;UIDVALIDITY=785799047/;UID=113330/;section=1.5.9",
     MessageUrl("INBOX", 785799047, 113330, Section((1, 5, 9)))),
    # Without UIDVALIDITY, with PARTIAL; "inbox" is INBOX (RFC 3501 5.1).
    (b"/inbox/;UID=7/;PARTIAL=10.20", MessageUrl("INBOX", None, 7, None, (10, 20))),
    (b"/INBOX/;UID=7/;SECTION=TEXT/;PARTIAL=5", MessageUrl("INBOX", None, 7, Section((), "TEXT"), (5, None))),
    # Relative to the base imap://user@server/ (RFC 4469 section 3).
    (b"INBOX/;UID=7", MessageUrl("INBOX", None, 7)),
    (b"Drafts;UIDVALIDITY=5/;UID=2/;SECTION=1", MessageUrl("Drafts", 5, 2, Section((1,)))),
    # Relative to the selected mailbox.
    (b";UID=3/;SECTION=1", MessageUrl(None, None, 3, Section((1,)))),
    # Hierarchy, percent-encoding, modified UTF-7 and UTF-8 names.
    (b"/Archive/2024/;UID=1", MessageUrl("Archive/2024", None, 1)),
    (b"/My%20Folder/;UID=1", MessageUrl("My Folder", None, 1)),
    (b"/Entw&APw-rfe/;UID=1", MessageUrl("Entwürfe", None, 1)),
    (b"/Entw%C3%BCrfe/;UID=1", MessageUrl("Entwürfe", None, 1)),
    # A percent-encoded header list in a section.
    (b"/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(SUBJECT%20FROM)",
     MessageUrl("INBOX", None, 1, Section((), "HEADER.FIELDS", (b"SUBJECT", b"FROM")))),
]


@pytest.mark.parametrize("url, expected", VALID)
def test_valid(url, expected):
    """Each accepted form parses into the mailbox, UIDVALIDITY, UID, section and partial it names."""
    assert parse_message_url(url) == expected


INVALID = [
    b"",
    b"imap://fred@example.org/INBOX/;UID=1",
    b"IMAP://example.org/INBOX/;UID=1",
    b"//example.org/INBOX/;UID=1",
    b"/INBOX/;UID=1;URLAUTH=anonymous",
    b"/INBOX",
    b"/INBOX/;UID=",
    b"/INBOX/;UID=0",
    b"/INBOX/;UID=4294967296",
    b"/INBOX;UIDVALIDITY=0/;UID=1",
    b"/INBOX/;UID=1/;SECTION=",
    b"/INBOX/;UID=1/;SECTION=1.BOGUS",
    b"/INBOX/;UID=1/;SECTION=0",
    b"/INBOX/;UID=1/;PARTIAL=1.0",
    b"/INBOX/;UID=1/;PARTIAL=x",
    b"/IN BOX/;UID=1",
    b'/IN"BOX/;UID=1',
    b"/INBOX\xc3\xa9/;UID=1",
    b"/../x/;UID=1",
    b"/INBOX/;UID=1/junk",
    b"/;UID=1",
    b"//;UID=1",
    b"/" + b"a" * 20000 + b"/;UID=1",
]


@pytest.mark.parametrize("url", INVALID)
def test_invalid(url):
    """Malformed URLs and those RFC 4469 leaves out of scope raise BadUrl (the handler's BADURL)."""
    with pytest.raises(BadUrl):
        parse_message_url(url)


def test_badurl_code_is_bare_and_well_formed():
    """RFC 4469 section 5 with erratum 4046: the URL unquoted, and no ']' or control octet in it."""
    assert badurl_code(b"/INBOX/;UID=5") == "BADURL /INBOX/;UID=5"
    assert badurl_code(b"/a]b c\r\n") == "BADURL /a%5Db%20c%0D%0A"
    assert badurl_code(b"") == "BADURL %20"


class OpenCounter:
    """A store whose mailboxes all exist and are empty; counts opens."""

    def __init__(self):
        self.opened = []

    def open(self, name, readonly=False):
        store = self

        class Box:
            uidvalidity = 1

            def sync(self):
                from storage.interfaces import MailboxSnapshot

                return MailboxSnapshot(1, 1, ())

            def close(self):
                store.opened.remove(name)

        self.opened.append(name)
        return Box()


def test_catenator_limits_open_mailboxes():
    """One APPEND may not make the server open more than MAX_MAILBOXES mailboxes; all are closed after."""
    store = OpenCounter()
    cat = Catenator(store, None, 1000)
    for n in range(Catenator.MAX_MAILBOXES):
        with pytest.raises(CommandFailed) as e:
            cat.resolve(b"/box%d/;UID=1" % n)
        assert e.value.code.startswith("BADURL ")
    with pytest.raises(CommandFailed) as e:
        cat.resolve(b"/another/;UID=1")
    assert e.value.code == "LIMIT"
    assert len(store.opened) == Catenator.MAX_MAILBOXES
    cat.close()
    assert store.opened == []


def test_authorized_url_full_and_rump():
    """RFC 4467 URLs: rump ends at the access identifier; mechanism, token, EXPIRE, user+ parsed."""
    from datetime import datetime, timezone

    from imapd.imapurl import parse_authorized_url

    full = (b"imap://joe@example.com/INBOX;UIDVALIDITY=5/;uid=20/;section=1.2"
            b";urlauth=submit+fred:internal:91354a473744909de610943775f92038")
    u = parse_authorized_url(full)
    assert u.rump == full.split(b":internal:")[0]
    assert (u.user, u.access, u.access_user, u.mechanism) == ("joe", "submit", "fred", "INTERNAL")
    assert u.token == bytes.fromhex("91354a473744909de610943775f92038")
    assert (u.message.mailbox, u.message.uidvalidity, u.message.uid,
            u.message.section.part) == ("INBOX", 5, 20, (1, 2))
    r = parse_authorized_url(b"IMAP://j%40x;AUTH=*@h:143/Sent/;UID=3;EXPIRE=2030-01-01T00:00:00Z"
                             b";URLAUTH=anonymous")
    assert (r.user, r.access, r.mechanism, r.token) == ("j@x", "anonymous", None, None)
    assert r.expire == datetime(2030, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("url", [
    b"/INBOX/;UID=1;URLAUTH=anonymous",                         # not absolute
    b"imap://joe@h/INBOX/;UID=1",                               # no URLAUTH
    b"imap://joe@h/INBOX;URLAUTH=anonymous",                    # no UID
    b"imap://joe@h/INBOX/;UID=1;URLAUTH=user",                  # user+ without a user
    b"imap://joe@h/INBOX/;UID=1;EXPIRE=2030-01-01T00:00:00;URLAUTH=anonymous",  # no zone
    b"imap://joe@h/INBOX/;UID=1;URLAUTH=anonymous:INTERNAL:zz",  # token not hex
])
def test_authorized_url_invalid(url):
    """Malformed URLAUTH URLs are refused with a reason."""
    from imapd.imapurl import parse_authorized_url

    with pytest.raises(BadUrl):
        parse_authorized_url(url)
