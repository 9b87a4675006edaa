"""
RFC 5267 CONTEXT=SORT: SORT RETURN (PARTIAL n:m) over the sorted result,
and UPDATE with ADDTO/REMOVEFROM naming positions in sort order, with two
sessions interleaved, on each store.  (Dovecot 2.3 does not offer
CONTEXT=SORT, so there is nothing to compare with there.)
"""

from imapd.sort.keys import cache_clear

#: Message n's Date (day of January 2024); DATE order is 2 4 1 5 3.
DAYS = {1: 3, 2: 1, 3: 5, 4: 2, 5: 4}


def message(n, day, hour=10):
    return (f"From: a{n}@example.org\r\nTo: b@example.org\r\n"
            f"Subject: subject {n}\r\nDate: Mon, {day} Jan 2024 {hour}:00:00 +0000\r\n"
            f"Message-ID: <m{n}@example.org>\r\n\r\nBody {n}.\r\n").encode()


def append(conv, tag, data):
    conv.send(f"{tag} APPEND INBOX {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    lines = conv.lines()
    assert lines[-1].startswith(f"{tag} OK"), lines


def fill(conv):
    """APPEND five messages dated per DAYS, then SELECT INBOX."""
    cache_clear()
    for n, day in DAYS.items():
        append(conv, f"a{n}", message(n, day))
    conv.ok("s1 SELECT INBOX")


def second(new_conv):
    other = new_conv()
    other.login()
    other.ok("o0 SELECT INBOX")
    return other


def test_partial_in_sort_order(authed):
    """PARTIAL picks positions of the sorted result, listed in sort order."""
    fill(authed)
    authed.script(
        """
        C: p1 UID SORT RETURN (PARTIAL 2:3) (DATE) UTF-8 ALL
        S: * ESEARCH (TAG "p1") UID PARTIAL (2:3 4,1)
        S: p1 OK UID SORT completed
        C: p2 SORT RETURN (PARTIAL 9:4 COUNT MIN) (REVERSE DATE) UTF-8 ALL
        S: * ESEARCH (TAG "p2") MIN 3 PARTIAL (4:9 4,2) COUNT 5
        S: p2 OK SORT completed
        C: p3 SORT RETURN (PARTIAL 6:7) (DATE) UTF-8 ALL
        S: * ESEARCH (TAG "p3") PARTIAL (6:7 NIL)
        S: p3 OK SORT completed
        C: p4 SORT RETURN (SAVE PARTIAL 1:2) (DATE) UTF-8 ALL
        S: * ESEARCH (TAG "p4") PARTIAL (1:2 2,4)
        S: p4 OK SORT completed
        C: p5 SEARCH $
        S: * SEARCH 2 4
        S: p5 OK SEARCH completed
        """
    )


def test_update_positions(authed, new_conv):
    """
    Another session's changes come as REMOVEFROM/ADDTO with positions in
    DATE order: a removal is counted in the list as it was, an insertion
    at its final place; a removal by expunge comes before the EXPUNGE.
    """
    fill(authed)
    other = second(new_conv)
    authed.script(
        """
        C: x1 UID SORT RETURN (UPDATE ALL) (DATE) UTF-8 UNSEEN
        S: * ESEARCH (TAG "x1") UID ALL 2,4,1,5:3
        S: x1 OK UID SORT completed
        """.replace("5:3", "5,3")
    )
    # UID 6 dates between 4 and 1; UID 1 becomes seen.
    append(other, "b1", message(6, 2, hour=12))
    other.ok("b2 UID STORE 1 +FLAGS.SILENT (\\Seen)")
    authed.script(
        """
        C: n1 NOOP
        S: * 1 FETCH (FLAGS (\\Seen{{.*}}))
        S: * 6 EXISTS
        S: * {{\\d}} RECENT
        S: * ESEARCH (TAG "x1") UID REMOVEFROM (3 1) ADDTO (3 6)
        S: n1 OK NOOP completed
        """
    )
    # Now 2,4,6,5,3: the first two leave together, two arrive apart.
    other.ok("b3 UID STORE 2,4 +FLAGS.SILENT (\\Seen)")
    append(other, "b4", message(7, 1, hour=1))
    append(other, "b5", message(8, 9))
    authed.script(
        """
        C: n2 NOOP
        S: * 2 FETCH (FLAGS (\\Seen{{.*}}))
        S: * 4 FETCH (FLAGS (\\Seen{{.*}}))
        S: * 8 EXISTS
        S: * {{\\d}} RECENT
        S: * ESEARCH (TAG "x1") UID REMOVEFROM (1 2,4) ADDTO (1 7 5 8)
        S: n2 OK NOOP completed
        """
    )
    # Now 7,6,5,3,8: expunging 5 (message 5) removes position 3 first.
    other.ok("b6 UID STORE 5 +FLAGS.SILENT (\\Deleted)")
    other.ok("b7 EXPUNGE")
    authed.script(
        """
        C: n3 NOOP
        S: * ESEARCH (TAG "x1") UID REMOVEFROM (3 5)
        S: * 5 EXPUNGE
        S: n3 OK NOOP completed
        C: n4 UID SORT RETURN (ALL) (DATE) UTF-8 UNSEEN
        S: * ESEARCH (TAG "n4") UID ALL 7,6,3,8
        S: n4 OK UID SORT completed
        """
    )


def test_update_message_numbers(authed, new_conv):
    """
    A SORT (message numbers) result: no update during FETCH; at NOOP the
    REMOVEFROM names the old number before the EXPUNGE, the ADDTO the new
    one after EXISTS.
    """
    fill(authed)
    other = second(new_conv)
    authed.ok("x1 SORT RETURN (UPDATE) (DATE) UTF-8 ALL")
    other.ok("b1 UID STORE 4 +FLAGS.SILENT (\\Deleted)")
    other.ok("b2 EXPUNGE")
    append(other, "b3", message(6, 2, hour=12))
    authed.script(
        """
        C: f1 FETCH 1 UID
        S: * 1 FETCH (UID 1)
        S: * 6 EXISTS
        S: * {{\\d}} RECENT
        S: f1 OK FETCH completed
        C: n1 NOOP
        S: * ESEARCH (TAG "x1") REMOVEFROM (2 4)
        S: * 4 EXPUNGE
        S: * ESEARCH (TAG "x1") ADDTO (2 5)
        S: n1 OK NOOP completed
        """
    )


def test_cancel_and_limits(authed, new_conv):
    """CANCELUPDATE works for SORT results; a SORT UPDATE under a live tag is BAD."""
    fill(authed)
    other = second(new_conv)
    authed.ok("x1 UID SORT RETURN (UPDATE) (DATE) UTF-8 ALL")
    lines = authed.transact("x1 UID SORT RETURN (UPDATE) (DATE) UTF-8 ALL")
    assert lines == [lines[-1]] and lines[-1].startswith("x1 BAD "), lines
    authed.ok('c1 CANCELUPDATE "x1"')
    append(other, "b1", message(6, 2))
    assert authed.ok("n1 NOOP")[0] == "* 6 EXISTS"
    assert not [l for l in authed.ok("n2 NOOP") if "ESEARCH" in l]
