"""
THREAD and UID THREAD conversations (RFC 5256 section 4, Dovecot's REFS),
on each store.
"""

import pytest

from imapd.sort.keys import cache_clear


def message(mid, subject, date, refs=None):
    """A message with a Message-ID, Subject, Date and optional References."""
    head = (f"From: a@x.org\r\nMessage-ID: <{mid}@x.org>\r\nSubject: {subject}\r\n"
            f"Date: {date}\r\n")
    if refs:
        head += "References: " + " ".join(f"<{r}@x.org>" for r in refs) + "\r\n"
    return (head + "\r\nbody\r\n").encode()


def append(conv, tag, data):
    """APPEND one message to INBOX."""
    conv.send(f"{tag} APPEND INBOX {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    assert conv.lines()[-1].startswith(f"{tag} OK")


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty sort-key cache."""
    cache_clear()
    yield
    cache_clear()


@pytest.fixture
def mailbox(authed):
    """INBOX with two threads and a stray reply, selected."""
    msgs = [
        message("a", "Lunch", "Mon, 2 Jan 2023 10:00:00 +0000"),
        message("b", "Re: Lunch", "Mon, 2 Jan 2023 11:00:00 +0000", ["a"]),
        message("c", "Release", "Sun, 1 Jan 2023 09:00:00 +0000"),
        message("d", "Re: Lunch", "Mon, 2 Jan 2023 12:00:00 +0000", ["a"]),
        message("e", "Re: Release", "Tue, 3 Jan 2023 09:00:00 +0000"),
        message("f", "Re: Lunch", "Mon, 2 Jan 2023 13:00:00 +0000", ["a", "b"]),
    ]
    for i, data in enumerate(msgs):
        append(authed, f"a{i}", data)
    authed.ok("s1 SELECT INBOX")
    return authed


def test_thread_references(mailbox):
    """REFERENCES links by References and joins the stray reply by subject."""
    mailbox.script(
        """
        C: t1 THREAD REFERENCES UTF-8 ALL
        S: * THREAD (3 5)(1 (2 6)(4))
        S: t1 OK THREAD completed
        """
    )


def test_thread_refs(mailbox):
    """REFS does not group by subject and orders threads by their newest message."""
    assert mailbox.ok("t1 THREAD REFS UTF-8 ALL")[0] == "* THREAD (3)(1 (2 6)(4))(5)"


def test_thread_orderedsubject(mailbox):
    """ORDEREDSUBJECT: one level under the first message of each subject."""
    assert mailbox.ok("t1 THREAD ORDEREDSUBJECT UTF-8 ALL")[0] == "* THREAD (3 5)(1 (2)(4)(6))"


def test_uid_thread_and_search(mailbox):
    """UID THREAD answers UIDs and threads only what the search keys match."""
    lines = mailbox.ok("t1 UID THREAD REFERENCES US-ASCII NOT SUBJECT release")
    assert lines[0] == "* THREAD (1 (2 6)(4))"
    assert mailbox.ok("t2 THREAD REFERENCES UTF-8 2:4")[0] == "* THREAD (3)((2)(4))"


def test_thread_latin1_charset(mailbox):
    """A SquirrelMail-style ISO-8859-1 THREAD works."""
    assert mailbox.ok("t1 THREAD REFERENCES ISO-8859-1 SUBJECT lunch")[0] == "* THREAD (1 (2 6)(4))"


def test_thread_errors(mailbox):
    """An unknown algorithm is BAD; an unknown charset NO [BADCHARSET]."""
    assert mailbox.transact("t1 THREAD XYZZY UTF-8 ALL")[-1].startswith("t1 BAD")
    assert mailbox.transact("t2 THREAD REFERENCES X-BOGUS ALL")[-1].startswith("t2 NO [BADCHARSET (")
    assert mailbox.transact("t3 THREAD REFERENCES")[-1].startswith("t3 BAD")


def test_thread_capabilities(authed):
    """The SORT/THREAD extensions and I18NLEVEL=1 are advertised once logged in."""
    caps = authed.ok("c1 CAPABILITY")[0].split()
    for cap in ("SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT",
                "THREAD=REFERENCES", "THREAD=REFS", "I18NLEVEL=1"):
        assert cap in caps
