"""MULTIAPPEND (RFC 3502): several messages in one APPEND, all or none."""


def test_multiappend_appends_all_with_one_appenduid(authed):
    """RFC 3502 section 6.3.11: both messages land, APPENDUID names both UIDs."""
    a, b = b"Subject: one\r\n\r\n1\r\n", b"Subject: two\r\n\r\n2\r\n"
    authed.send(
        b"a1 APPEND INBOX (\\Seen) {%d+}\r\n%s (\\Flagged) {%d+}\r\n%s\r\n" % (len(a), a, len(b), b)
    )
    lines = authed.lines()
    assert lines[-1].startswith("a1 OK [APPENDUID ")
    assert lines[-1].split()[4] == "1:2]"
    authed.ok("s1 SELECT INBOX")
    flags = authed.ok("f1 FETCH 1:2 (FLAGS)")
    assert "\\Seen" in flags[0] and "\\Flagged" in flags[1]


def test_multiappend_is_all_or_nothing(authed):
    """RFC 3502 section 6.3.11: if one message is refused, none is appended."""
    a = b"Subject: one\r\n\r\n1\r\n"
    authed.send(b"a1 APPEND INBOX {%d+}\r\n%s (\\Bogus) {3+}\r\nxyz\r\n" % (len(a), a))
    assert authed.lines()[-1].startswith("a1 BAD")
    assert authed.ok("s1 STATUS INBOX (MESSAGES)")[0] == "* STATUS INBOX (MESSAGES 0)"


def test_multiappend_advertised(authed):
    """The capability is listed once logged in."""
    assert "MULTIAPPEND" in authed.ok("c1 CAPABILITY")[0].split()
