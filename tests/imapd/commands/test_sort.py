"""
SORT and UID SORT conversations (RFC 5256 section 3, RFC 5957), on each
store: every criterion, REVERSE, the sequence-number tie-break, charsets.
"""

import pytest

from imapd.sort.keys import cache_clear


def message(subject, sender, to, date, cc=None, extra=b""):
    """A small message with the given header fields (bytes or str)."""
    def b(v):
        return v.encode("utf-8") if isinstance(v, str) else v
    head = b"From: " + b(sender) + b"\r\nTo: " + b(to) + b"\r\n"
    if cc is not None:
        head += b"Cc: " + b(cc) + b"\r\n"
    head += b"Subject: " + b(subject) + b"\r\n"
    if date is not None:
        head += b"Date: " + b(date) + b"\r\n"
    return head + extra + b"\r\nbody\r\n"


def append(conv, tag, data, date=None):
    """APPEND one message to INBOX, optionally with an INTERNALDATE."""
    when = f'"{date}" ' if date else ""
    conv.send(f"{tag} APPEND INBOX {when}{{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    lines = conv.lines()
    assert lines[-1].startswith(f"{tag} OK"), lines


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty sort-key cache."""
    cache_clear()
    yield
    cache_clear()


#: Five messages chosen so that every criterion gives a different order.
MESSAGES = [
    (message("Re: banana", "Carol <carol@x.org>", "zed@x.org",
             "Tue, 3 Jan 2023 10:00:00 +0000", cc="bob@x.org"),
     "01-Jan-2023 00:00:05 +0000"),
    (message("apple", '"Zoe" <alice@x.org>', "Yann <yann@x.org>",
             "Mon, 2 Jan 2023 10:00:00 +0000", cc="alice@x.org",
             extra=b"X-Pad: " + b"p" * 300 + b"\r\n"),
     "01-Jan-2023 00:00:03 +0000"),
    (message("[list] Cherry (fwd)", "bob@x.org", "Adam <xavier@x.org>",
             "Wed, 4 Jan 2023 01:00:00 +0200"),
     "01-Jan-2023 00:00:04 +0000"),
    (message("Fwd: Apple", "Alice <dave@x.org>", "Bea <bea@x.org>", None,
             cc="carl@x.org"),
     "01-Jan-2023 00:00:01 +0000"),
    (message("cherry", "eve@x.org", "amy@x.org",
             "Thu, 5 Jan 2023 10:00:00 +0000", cc="zed@x.org"),
     "01-Jan-2023 00:00:02 +0000"),
]


@pytest.fixture
def five(authed):
    """INBOX with L{MESSAGES}, selected."""
    for i, (data, date) in enumerate(MESSAGES):
        append(authed, f"a{i}", data, date)
    authed.ok("s1 SELECT INBOX")
    return authed


@pytest.mark.parametrize("criteria, expected", [
    ("ARRIVAL", "4 5 2 3 1"),
    ("REVERSE ARRIVAL", "1 3 2 5 4"),
    # Message 4 has no Date: its INTERNALDATE (1 Jan) sorts it first.
    ("DATE", "4 2 1 3 5"),
    ("REVERSE DATE", "5 3 1 2 4"),
    # Sizes 124, 438, 118, 92, 110.
    ("SIZE", "4 5 3 1 2"),
    # Base subjects: banana, apple, cherry, apple, cherry.
    ("SUBJECT", "2 4 1 3 5"),
    ("REVERSE SUBJECT", "3 5 1 2 4"),
    ("SUBJECT DATE", "4 2 1 3 5"),
    ("SUBJECT REVERSE DATE", "2 4 1 5 3"),
    # addr-mailbox: carol, alice, bob, dave, eve.
    ("FROM", "2 3 1 4 5"),
    # zed, yann, xavier, bea, amy.
    ("TO", "5 4 3 2 1"),
    # bob, alice, "" (none), carl, zed.
    ("CC", "3 2 1 4 5"),
    # Display names: Carol, Zoe, bob@x.org, Alice, eve@x.org.
    ("DISPLAYFROM", "4 3 1 5 2"),
    # zed@x.org, Yann, Adam, Bea, amy@x.org.
    ("DISPLAYTO", "3 5 4 2 1"),
])
def test_sort_criteria(five, criteria, expected):
    """Each RFC 5256/5957 sort key orders the five messages as computed by hand."""
    lines = five.ok(f"t1 SORT ({criteria}) UTF-8 ALL")
    assert lines[0] == f"* SORT {expected}"
    assert lines[-1] == "t1 OK SORT completed"


def test_uid_sort_and_search_keys(five):
    """UID SORT answers UIDs and sorts only the messages the search keys match."""
    lines = five.ok("t1 UID SORT (SUBJECT) US-ASCII NOT FROM eve")
    assert lines[0] == "* SORT 2 4 1 3"
    assert five.ok("t2 SORT (DATE) UTF-8 1:2")[0] == "* SORT 2 1"


def test_sort_ties_by_sequence(authed):
    """Equal keys keep sequence order, also under REVERSE (RFC 5256 section 3)."""
    for i in range(3):
        append(authed, f"a{i}", message("same", "a@x.org", "b@x.org",
                                        "Mon, 2 Jan 2023 10:00:00 +0000"))
    authed.ok("s1 SELECT INBOX")
    assert authed.ok("t1 SORT (SUBJECT) UTF-8 ALL")[0] == "* SORT 1 2 3"
    assert authed.ok("t2 SORT (REVERSE SUBJECT) UTF-8 ALL")[0] == "* SORT 1 2 3"


def test_sort_empty_result(five):
    """No match gives an empty SORT response."""
    assert five.ok("t1 SORT (DATE) UTF-8 SUBJECT nothing-like-this")[0] == "* SORT"


def test_sort_squirrelmail_latin1(authed):
    """SquirrelMail's C{SORT (DATE) ISO-8859-1 ALL} works, and latin-1 literals search."""
    append(authed, "a1", message("=?iso-8859-1?q?caf=E9?=", "a@x.org", "b@x.org",
                                 "Mon, 2 Jan 2023 10:00:00 +0000"))
    append(authed, "a2", message("tea", "a@x.org", "b@x.org",
                                 "Sun, 1 Jan 2023 10:00:00 +0000"))
    authed.ok("s1 SELECT INBOX")
    assert authed.ok("t1 SORT (DATE) ISO-8859-1 ALL")[0] == "* SORT 2 1"
    authed.send(b"t2 SORT (DATE) ISO-8859-1 SUBJECT {4+}\r\nCAF\xc9\r\n")
    assert authed.lines()[0] == "* SORT 1"


def test_sort_bad_charset(five):
    """An unknown charset is C{NO [BADCHARSET (...)]} (RFC 5256 section 3)."""
    lines = five.transact("t1 SORT (DATE) X-NO-SUCH-CHARSET ALL")
    assert lines[-1].startswith("t1 NO [BADCHARSET (")
    assert "UTF-8" in lines[-1]


@pytest.mark.parametrize("command", [
    "t1 SORT DATE UTF-8 ALL",
    "t1 SORT () UTF-8 ALL",
    "t1 SORT (SENDER) UTF-8 ALL",
    "t1 SORT (DATE) ALL",
    "t1 SORT (REVERSE) UTF-8 ALL",
])
def test_sort_syntax_errors(five, command):
    """Malformed SORT commands are BAD."""
    assert five.transact(command)[-1].startswith("t1 BAD")


def test_sort_needs_selected(authed):
    """SORT is a selected-state command."""
    assert authed.transact("t1 SORT (DATE) UTF-8 ALL")[-1].startswith("t1 BAD")


def test_second_sort_uses_cache(five, monkeypatch):
    """
    A second SORT on keys the first computed reads no message: the keys
    come from the process-wide cache.  (Only the key groups a SORT needs
    are computed: a cold SORT (DATE) parses the Date field alone.)
    """
    five.ok("t1 SORT (SUBJECT DATE) UTF-8 ALL")
    from storage.maildir.mailbox import MaildirMailbox

    def fail(self, uid):
        raise AssertionError("message read on a cached SORT")
    monkeypatch.setattr(MaildirMailbox, "read", fail)
    assert five.ok("t2 SORT (REVERSE DATE) UTF-8 ALL")[0] == "* SORT 5 3 1 2 4"


def test_date_sort_parses_no_address(five, monkeypatch):
    """
    SORT (DATE) of unread messages computes no address key (parsing
    addresses is most of a cold SORT's cost); a later SORT (FROM) reads
    the messages again for them and answers right.
    """
    import imapd.sort.keys as keys

    real = keys._first_address

    def fail(message, name):
        raise AssertionError("address parsed for SORT (DATE)")
    monkeypatch.setattr(keys, "_first_address", fail)
    assert five.ok("t1 SORT (DATE) UTF-8 ALL")[0] == "* SORT 4 2 1 3 5"
    assert five.ok("t2 THREAD REFERENCES UTF-8 ALL")[0].startswith("* THREAD ")
    monkeypatch.setattr(keys, "_first_address", real)
    # addr-mailbox: carol, alice, bob, dave, eve (as in test_sort_criteria).
    assert five.ok("t3 SORT (FROM) UTF-8 ALL")[0] == "* SORT 2 3 1 4 5"


LATIN1_MESSAGES = [
    message("=?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=", "a@x.org", "b@x.org",
            "Mon, 2 Jan 2023 10:00:00 +0000"),
    message("nothing here", "a@x.org", "b@x.org", "Mon, 2 Jan 2023 10:00:00 +0000"),
    # An 8-bit body in ISO-8859-1, quoted-printable.
    message("body", "a@x.org", "b@x.org", "Mon, 2 Jan 2023 10:00:00 +0000",
            extra=b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
                  b"Content-Transfer-Encoding: quoted-printable\r\n").replace(
        b"\r\nbody\r\n", b"\r\nSch=F6ne K=D6LNER Gr=FC=DFe\r\n"),
    # The same words decomposed (NFD) in UTF-8.
    message("Ko\u0308ln in NFD", "a@x.org", "b@x.org", "Mon, 2 Jan 2023 10:00:00 +0000"),
]


@pytest.mark.parametrize("latin1, utf8", [
    (b"K\xf6ln", "Köln"),
    (b"K\xd6LN", "KÖLN"),
    (b"GR\xdc\xdfE", "GRÜßE"),
])
def test_search_charset_latin1_matches_utf8(authed, latin1, utf8):
    """SEARCH CHARSET ISO-8859-1 with a latin-1 literal finds what the UTF-8 search finds."""
    for i, data in enumerate(LATIN1_MESSAGES):
        append(authed, f"a{i}", data)
    authed.ok("s1 SELECT INBOX")
    authed.send(b"t1 SEARCH CHARSET ISO-8859-1 TEXT {%d+}\r\n%s\r\n" % (len(latin1), latin1))
    latin = authed.lines()
    raw = utf8.encode("utf-8")
    authed.send(b"t2 SEARCH CHARSET UTF-8 TEXT {%d+}\r\n%s\r\n" % (len(raw), raw))
    unicode_ = authed.lines()
    assert latin[-1].startswith("t1 OK") and unicode_[-1].startswith("t2 OK")
    assert latin[0] == unicode_[0]
    assert latin[0] != "* SEARCH"


def test_search_i18n_casemap(authed):
    """I18NLEVEL=1: case-insensitive for all scripts, and NFC/NFD alike (RFC 5255, RFC 5051)."""
    for i, data in enumerate(LATIN1_MESSAGES):
        append(authed, f"a{i}", data)
    append(authed, "a9", message("Привет ΣΟΦΊΑ", "a@x.org", "b@x.org",
                                 "Mon, 2 Jan 2023 10:00:00 +0000"))
    authed.ok("s1 SELECT INBOX")
    for needle, hits in [("köln", "1 3 4"), ("ПРИВЕТ", "5"), ("σοφία", "5")]:
        raw = needle.encode("utf-8")
        authed.send(b"t1 SEARCH CHARSET UTF-8 TEXT {%d+}\r\n%s\r\n" % (len(raw), raw))
        assert authed.lines()[0] == "* SEARCH " + hits, needle


@pytest.mark.parametrize("charset", [
    "us-ascii", "utf-8", "ISO-8859-15", "Windows-1252", "windows-1251", "KOI8-R",
    "KOI8-U", "ISO-2022-JP", "Shift_JIS", "EUC-JP", "GB2312", "GBK", "GB18030",
    "Big5", "EUC-KR", "ks_c_5601-1987", "latin1", "ISO-8859-16",
])
def test_sort_charset_aliases(five, charset):
    """SORT accepts the usual charset names and their aliases."""
    assert five.ok(f"t1 SORT (ARRIVAL) {charset} ALL")[0] == "* SORT 4 5 2 3 1"


def test_sort_korean_literal(authed):
    """A SORT search string in EUC-KR finds the UTF-8 encoded-word subject."""
    word = "안녕"
    append(authed, "a1", message("=?UTF-8?B?" + __import__("base64").b64encode(
        word.encode()).decode() + "?=", "a@x.org", "b@x.org", "Mon, 2 Jan 2023 10:00:00 +0000"))
    append(authed, "a2", message("other", "a@x.org", "b@x.org", "Mon, 2 Jan 2023 10:00:00 +0000"))
    authed.ok("s1 SELECT INBOX")
    raw = word.encode("euc-kr")
    authed.send(b"t1 SORT (SUBJECT) EUC-KR SUBJECT {%d+}\r\n%s\r\n" % (len(raw), raw))
    assert authed.lines()[0] == "* SORT 1"


def test_repeated_sort_reuses_answer(five, monkeypatch):
    """The same SORT over the same messages reuses the answer; new mail invalidates it."""
    first = five.ok("t1 SORT (SUBJECT) UTF-8 ALL")[0]
    import imapd.sort.keys as keys

    def fail(*args):
        raise AssertionError("sorted again")
    monkeypatch.setattr(keys, "sort_items", fail)
    assert five.ok("t2 SORT (SUBJECT) UTF-8 ALL")[0] == first
    monkeypatch.undo()
    append(five, "a9", message("aardvark", "a@x.org", "b@x.org", None))
    five.ok("n1 NOOP")
    assert five.ok("t3 SORT (SUBJECT) UTF-8 ALL")[0] == "* SORT 6 2 4 1 3 5"


def _forbid_store_reads(conv, monkeypatch):
    mailbox = conv.proto.selected.mailbox

    def fail(uid):
        raise AssertionError(f"message {uid} read from the store")
    monkeypatch.setattr(mailbox, "read", fail)
    monkeypatch.setattr(mailbox, "read_header", fail)


def test_keys_survive_a_restart_in_the_index(five, monkeypatch):
    """
    A restarted process (empty key cache) sorts and threads from the
    node's index without reading a message, with the same answers.
    """
    commands = ["t1 SORT (DATE) UTF-8 ALL", "t2 SORT (FROM) UTF-8 ALL",
                "t3 THREAD REFERENCES UTF-8 ALL", "t4 SORT (DISPLAYTO SUBJECT) UTF-8 ALL"]
    first = [five.ok(c)[0] for c in commands]
    cache_clear()
    _forbid_store_reads(five, monkeypatch)
    assert [five.ok(c)[0] for c in commands] == first


def test_scribbled_sort_keys_are_computed_again(five, monkeypatch):
    """Garbage in the index's sortkeys column costs a re-read, never a wrong order."""
    import sqlite3

    from imapd.cache import mailbox_identity
    from index import index_path

    expected = five.ok("t1 SORT (REVERSE SUBJECT) UTF-8 ALL")[0]
    account = five.proto.account
    path = index_path(account.index_dir, mailbox_identity(account.user, five.proto.selected.mailbox))
    with sqlite3.connect(path) as db:
        changed = db.execute("UPDATE message SET sortkeys = CASE uid % 3 WHEN 0 THEN 'not json' "
                             "WHEN 1 THEN '[1, [\"subject\"], 7]' ELSE '[1, [\"nope\"]]' END").rowcount
    assert changed == 5
    cache_clear()
    assert five.ok("t2 SORT (REVERSE SUBJECT) UTF-8 ALL")[0] == expected == "* SORT 3 5 1 2 4"


def test_index_keeps_every_key_group_computed(five, monkeypatch):
    """
    Key groups computed by different SORTs, each in a fresh process,
    accumulate in the index: a row is never rewritten with fewer groups.
    """
    five.ok("t1 SORT (DATE) UTF-8 ALL")
    cache_clear()
    five.ok("t2 SORT (FROM) UTF-8 ALL")
    cache_clear()
    _forbid_store_reads(five, monkeypatch)
    assert five.ok("t3 SORT (REVERSE DATE) UTF-8 ALL")[0] == "* SORT 5 3 1 2 4"
    assert five.ok("t4 SORT (FROM) UTF-8 ALL")[0] == "* SORT 2 3 1 4 5"
