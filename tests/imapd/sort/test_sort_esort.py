"""
RFC 5182 C{$} in SORT and THREAD search keys, and RFC 5267 ESORT
(C{SORT RETURN (MIN MAX ALL COUNT SAVE)}), as conversations on each store.
"""

from imapd.sort.keys import cache_clear

#: Message n's Date; DATE order is 2 4 1 5 3, ARRIVAL order 1 2 3 4 5.
DAYS = {1: 3, 2: 1, 3: 5, 4: 2, 5: 4}


def fill(conv, flagged=()):
    """APPEND five messages (subjects "subject n", Dates per DAYS, arriving on day n), SELECT INBOX."""
    cache_clear()
    for n, day in DAYS.items():
        data = (f"From: a{n}@example.org\r\nTo: b@example.org\r\n"
                f"Subject: subject {n}\r\nDate: Mon, {day} Jan 2024 10:00:00 +0000\r\n"
                f"Message-ID: <m{n}@example.org>\r\n\r\nBody {n}.\r\n").encode()
        flags = "(\\Flagged) " if n in flagged else ""
        when = f'"0{n}-Jan-2024 00:00:00 +0000" '
        conv.send(f"a{n} APPEND INBOX {flags}{when}{{{len(data)}+}}\r\n".encode()
                  + data + b"\r\n")
        assert conv.lines()[-1].startswith(f"a{n} OK"), n
    conv.ok("s1 SELECT INBOX")


def test_capability_advertises_esort(authed):
    """ESORT is advertised next to SORT, and CONTEXT=SORT (PARTIAL, UPDATE) with them."""
    caps = authed.ok("c1 CAPABILITY")[0].split()
    assert "ESORT" in caps and "SORT" in caps and "CONTEXT=SORT" in caps


def test_dollar_in_sort_and_thread(authed):
    """RFC 5182 section 2.2: $ names the saved messages in SORT and THREAD search keys."""
    fill(authed, flagged=(1, 3, 4))
    authed.script(
        """
        C: t0 SORT (DATE) UTF-8 $
        S: * SORT
        S: t0 OK SORT completed
        C: t1 SEARCH RETURN (SAVE) FLAGGED
        S: t1 OK SEARCH completed
        C: t2 SORT (DATE) UTF-8 $
        S: * SORT 4 1 3
        S: t2 OK SORT completed
        C: t3 UID SORT (REVERSE DATE) UTF-8 UID $ NOT 1
        S: * SORT 3 4
        S: t3 OK UID SORT completed
        C: t4 THREAD ORDEREDSUBJECT UTF-8 $
        S: * THREAD (4)(1)(3)
        S: t4 OK THREAD completed
        C: t5 UID THREAD REFERENCES UTF-8 OR $ 2
        S: * THREAD (2)(4)(1)(3)
        S: t5 OK UID THREAD completed
        """
    )


def test_dollar_after_expunge(authed):
    """Messages expunged since the SAVE drop out of $; SORT answers current sequence numbers."""
    fill(authed, flagged=(1, 3, 4))
    authed.ok("t1 UID SEARCH RETURN (SAVE) FLAGGED")
    authed.ok("t2 UID STORE 4 +FLAGS.SILENT (\\Deleted)")
    authed.ok("t3 EXPUNGE")
    authed.script(
        """
        C: t4 SORT (DATE) UTF-8 $
        S: * SORT 1 3
        S: t4 OK SORT completed
        C: t5 UID SORT (DATE) UTF-8 $
        S: * SORT 1 3
        S: t5 OK UID SORT completed
        C: t6 UID THREAD REFS UTF-8 $
        S: * THREAD (1)(3)
        S: t6 OK UID THREAD completed
        """
    )


def test_esort_return_options(authed):
    """RFC 5267 section 3: MIN/MAX are first/last in sort order, ALL keeps sort order."""
    fill(authed)
    authed.script(
        """
        C: t1 SORT RETURN (MIN MAX ALL COUNT) (DATE) UTF-8 ALL
        S: * ESEARCH (TAG "t1") MIN 2 MAX 3 ALL 2,4,1,5,3 COUNT 5
        S: t1 OK SORT completed
        C: t2 SORT RETURN () (ARRIVAL) UTF-8 ALL
        S: * ESEARCH (TAG "t2") ALL 1:5
        S: t2 OK SORT completed
        C: t3 SORT RETURN (ALL) (REVERSE ARRIVAL) UTF-8 ALL
        S: * ESEARCH (TAG "t3") ALL 5,4,3,2,1
        S: t3 OK SORT completed
        C: t4 SORT RETURN (COUNT MIN) (REVERSE DATE) UTF-8 NOT 3
        S: * ESEARCH (TAG "t4") MIN 5 COUNT 4
        S: t4 OK SORT completed
        C: t5 SORT RETURN (MIN MAX ALL COUNT) (DATE) UTF-8 NOT ALL
        S: * ESEARCH (TAG "t5") COUNT 0
        S: t5 OK SORT completed
        C: t6 SORT RETURN (MIN MIN) (DATE) UTF-8 ALL
        S: * ESEARCH (TAG "t6") MIN 2
        S: t6 OK SORT completed
        """
    )


def test_esort_uid_after_expunge(authed):
    """UID SORT RETURN gives UIDs and the UID marker; SORT RETURN gives sequence numbers."""
    fill(authed)
    authed.ok("d1 STORE 2 +FLAGS.SILENT (\\Deleted)")
    authed.ok("d2 EXPUNGE")
    authed.script(
        """
        C: t1 UID SORT RETURN (MIN MAX ALL) (DATE) UTF-8 ALL
        S: * ESEARCH (TAG "t1") UID MIN 4 MAX 3 ALL 4,1,5,3
        S: t1 OK UID SORT completed
        C: t2 SORT RETURN (ALL) (DATE) UTF-8 ALL
        S: * ESEARCH (TAG "t2") ALL 3,1,4,2
        S: t2 OK SORT completed
        """
    )


def test_esort_save(authed):
    """RFC 5182 section 2.4 with ESORT: SAVE alone is silent; with MIN/MAX only those are saved."""
    fill(authed, flagged=(1, 3, 4))
    authed.script(
        """
        C: t1 SORT RETURN (SAVE) (DATE) UTF-8 FLAGGED
        S: t1 OK SORT completed
        C: t2 SEARCH $
        S: * SEARCH 1 3 4
        S: t2 OK SEARCH completed
        C: t3 SORT RETURN (SAVE MIN) (DATE) UTF-8 ALL
        S: * ESEARCH (TAG "t3") MIN 2
        S: t3 OK SORT completed
        C: t4 SEARCH $
        S: * SEARCH 2
        S: t4 OK SEARCH completed
        C: t5 UID SORT RETURN (MAX MIN SAVE) (REVERSE DATE) UTF-8 NOT 1
        S: * ESEARCH (TAG "t5") UID MIN 3 MAX 2
        S: t5 OK UID SORT completed
        C: t6 SEARCH $
        S: * SEARCH 2 3
        S: t6 OK SEARCH completed
        C: t7 SORT RETURN (SAVE COUNT MIN) (DATE) UTF-8 NOT 2
        S: * ESEARCH (TAG "t7") MIN 4 COUNT 4
        S: t7 OK SORT completed
        C: t8 FETCH $ (UID)
        S: * 1 FETCH (UID 1)
        S: * 3 FETCH (UID 3)
        S: * 4 FETCH (UID 4)
        S: * 5 FETCH (UID 5)
        S: t8 OK FETCH completed
        """
    )


def test_esort_save_reads_old_dollar(authed):
    """A SORT ... SAVE may use $ itself: it reads the previous result, then replaces it."""
    fill(authed, flagged=(1, 3, 4))
    authed.ok("t1 SEARCH RETURN (SAVE) FLAGGED")
    authed.script(
        """
        C: t2 SORT RETURN (SAVE ALL) (DATE) UTF-8 $ NOT 4
        S: * ESEARCH (TAG "t2") ALL 1,3
        S: t2 OK SORT completed
        C: t3 SORT (DATE) UTF-8 $
        S: * SORT 1 3
        S: t3 OK SORT completed
        """
    )


def test_failed_esort_save_empties_dollar(authed):
    """RFC 5182 section 2.1: a SORT ... SAVE that fails (BADCHARSET) leaves $ empty."""
    fill(authed, flagged=(1, 2))
    authed.ok("t1 SEARCH RETURN (SAVE) FLAGGED")
    lines = authed.transact("t2 SORT RETURN (SAVE) (DATE) X-BOGUS SUBJECT x")
    assert lines[-1].startswith("t2 NO [BADCHARSET ("), lines
    assert authed.ok("t3 SEARCH $")[0] == "* SEARCH"
    # Without SAVE, a failed SORT leaves $ alone.
    authed.ok("t4 SEARCH RETURN (SAVE) FLAGGED")
    lines = authed.transact("t5 SORT RETURN (MIN) (DATE) X-BOGUS SUBJECT x")
    assert lines[-1].startswith("t5 NO [BADCHARSET ("), lines
    assert authed.ok("t6 SEARCH $")[0] == "* SEARCH 1 2"


def test_bad_return_options(authed):
    """Unknown options, PARTIAL with ALL and malformed RETURN are BAD; $ is kept."""
    fill(authed, flagged=(2,))
    authed.ok("t0 SEARCH RETURN (SAVE) FLAGGED")
    for n, line in enumerate([
            "SORT RETURN (PARTIAL 1:2 ALL) (DATE) UTF-8 ALL",
            "SORT RETURN (BOGUS) (DATE) UTF-8 ALL",
            "SORT RETURN (SAVE (DATE) UTF-8 ALL",
            "SORT RETURN (MIN) UTF-8 ALL",
            "SORT RETURN MIN (DATE) UTF-8 ALL",
            "THREAD RETURN (MIN) REFERENCES UTF-8 ALL"]):
        lines = authed.transact(f"b{n} {line}")
        assert lines == [lines[-1]] and lines[-1].startswith(f"b{n} BAD "), (line, lines)
    assert authed.ok("t1 SEARCH $")[0] == "* SEARCH 2"
