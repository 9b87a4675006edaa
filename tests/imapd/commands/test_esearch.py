"""
RFC 4731 ESEARCH: SEARCH and UID SEARCH with RETURN (MIN MAX ALL COUNT),
including the RFC's own examples, on each store.
"""

MSG = (
    b"From: {frm}\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: message {n}\r\n"
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b"\r\n"
    b"Body {n}.\r\n"
)


def fill(conv, count, flagged=(), smith=()):
    """APPEND C{count} messages (1-based C{flagged}/C{smith} sets), then SELECT INBOX."""
    for n in range(1, count + 1):
        frm = b"Smith <smith@example.org>" if n in smith else b"Alice <alice@example.org>"
        data = MSG.replace(b"{frm}", frm).replace(b"{n}", b"%d" % n)
        flags = "(\\Flagged) " if n in flagged else ""
        conv.send(f"a{n} APPEND INBOX {flags}{{{len(data)}+}}\r\n".encode() + data + b"\r\n")
        assert conv.lines()[-1].startswith(f"a{n} OK"), n
    conv.ok("s1 SELECT INBOX")


def test_rfc4731_examples(authed):
    """RFC 4731 section 3.1's examples: RETURN (MIN COUNT), RETURN () = ALL."""
    fill(authed, 11, flagged=(2, 5, 10, 11), smith=(5,))
    authed.script(
        """
        C: A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"
        S: * ESEARCH (TAG "A282") MIN 2 COUNT 3
        S: A282 OK SEARCH completed
        C: A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"
        S: * ESEARCH (TAG "A283") ALL 2,10:11
        S: A283 OK SEARCH completed
        """
    )


def test_all_options_and_uid(authed):
    """All four options in their order; UID SEARCH adds the UID indicator and gives UIDs."""
    fill(authed, 9)
    authed.ok("d1 STORE 4 +FLAGS.SILENT (\\Deleted)")
    authed.ok("d2 EXPUNGE")
    authed.script(
        """
        C: t1 UID SEARCH RETURN (COUNT ALL MAX MIN) NOT 4:6
        S: * ESEARCH (TAG "t1") UID MIN 1 MAX 9 ALL 1:3,8:9 COUNT 5
        S: t1 OK UID SEARCH completed
        C: t2 SEARCH RETURN (MIN MAX ALL COUNT) NOT 4:6
        S: * ESEARCH (TAG "t2") MIN 1 MAX 8 ALL 1:3,7:8 COUNT 5
        S: t2 OK SEARCH completed
        C: t3 SEARCH RETURN (MAX) ALL
        S: * ESEARCH (TAG "t3") MAX 8
        S: t3 OK SEARCH completed
        """
    )


def test_no_match(authed):
    """Nothing matched: MIN/MAX/ALL are left out, COUNT is 0; plain SEARCH is unchanged."""
    fill(authed, 2)
    authed.script(
        """
        C: t1 SEARCH RETURN (MIN MAX ALL COUNT) FLAGGED
        S: * ESEARCH (TAG "t1") COUNT 0
        S: t1 OK SEARCH completed
        C: t2 UID SEARCH RETURN (MIN) FLAGGED
        S: * ESEARCH (TAG "t2") UID
        S: t2 OK UID SEARCH completed
        C: t3 SEARCH FLAGGED
        S: * SEARCH
        S: t3 OK SEARCH completed
        C: t4 SEARCH RETURN (BOGUS) ALL
        S: t4 BAD {{.*}}RETURN option BOGUS{{.*}}
        """
    )


def test_capability_advertised(authed):
    """ESEARCH is in the authenticated capability list."""
    caps = authed.ok("c1 CAPABILITY")[0].split()
    assert "ESEARCH" in caps
