"""
RFC 5182 SEARCHRES: SEARCH RETURN (SAVE) and the C{$} marker in FETCH,
STORE, COPY, MOVE, SEARCH and their UID variants, on each store.
"""

from test_esearch import fill


def test_rfc5182_save_then_fetch_store(authed):
    """RFC 5182 section 2.1's example: SAVE alone answers no ESEARCH; $ feeds FETCH and STORE."""
    fill(authed, 11, flagged=(2, 5, 10, 11), smith=(5,))
    authed.script(
        """
        C: A282 SEARCH RETURN (SAVE) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"
        S: A282 OK SEARCH completed
        C: A283 FETCH $ (UID FLAGS)
        S: * 2 FETCH (UID 2 FLAGS (\\Flagged{{[^)]*}}))
        S: * 10 FETCH (UID 10 FLAGS (\\Flagged{{[^)]*}}))
        S: * 11 FETCH (UID 11 FLAGS (\\Flagged{{[^)]*}}))
        S: A283 OK FETCH completed
        C: A284 STORE $ +FLAGS.SILENT (\\Deleted)
        S: A284 OK STORE completed
        C: A285 SEARCH DELETED
        S: * SEARCH 2 10 11
        S: A285 OK SEARCH completed
        """
    )


def test_save_min_max(authed):
    """RFC 5182 section 2.4: SAVE with MIN/MAX (no ALL/COUNT) saves only those; with ALL, all."""
    fill(authed, 5, flagged=(2, 3, 4))
    authed.script(
        """
        C: t1 SEARCH RETURN (SAVE MIN MAX) FLAGGED
        S: * ESEARCH (TAG "t1") MIN 2 MAX 4
        S: t1 OK SEARCH completed
        C: t2 SEARCH $
        S: * SEARCH 2 4
        S: t2 OK SEARCH completed
        C: t3 UID SEARCH RETURN (SAVE MIN ALL) FLAGGED
        S: * ESEARCH (TAG "t3") UID MIN 2 ALL 2:4
        S: t3 OK UID SEARCH completed
        C: t4 UID SEARCH UID $ NOT 3
        S: * SEARCH 2 4
        S: t4 OK UID SEARCH completed
        C: t5 SEARCH RETURN (SAVE MIN) DELETED
        S: * ESEARCH (TAG "t5")
        S: t5 OK SEARCH completed
        C: t6 FETCH $ FLAGS
        S: t6 OK FETCH completed
        """
    )


def test_dollar_before_any_save_is_empty(authed):
    """$ before any SAVE names no message: FETCH and UID STORE do nothing, SEARCH finds nothing."""
    fill(authed, 2)
    authed.script(
        """
        C: t1 FETCH $ FLAGS
        S: t1 OK FETCH completed
        C: t2 UID STORE $ +FLAGS (\\Seen)
        S: t2 OK UID STORE completed
        C: t3 SEARCH $
        S: * SEARCH
        S: t3 OK SEARCH completed
        """
    )


def test_copy_move_and_expunged(authed):
    """$ in UID COPY and MOVE; messages expunged since the SAVE drop out of $."""
    fill(authed, 4, flagged=(1, 3, 4))
    authed.ok("c0 CREATE Other")
    authed.script(
        """
        C: t1 UID SEARCH RETURN (SAVE) FLAGGED
        S: t1 OK UID SEARCH completed
        C: t2 UID COPY $ Other
        S: t2 OK [COPYUID {{\\d+}} 1,3:4 1:3] COPY completed
        C: t3 UID STORE 3 +FLAGS.SILENT (\\Deleted)
        S: t3 OK UID STORE completed
        C: t4 EXPUNGE
        S: * 3 EXPUNGE
        S: t4 OK EXPUNGE completed
        C: t5 MOVE $ Other
        S: * OK [COPYUID {{\\d+}} 1,4 4:5] Moved
        S: * 3 EXPUNGE
        S: * 1 EXPUNGE
        S: t5 OK MOVE completed
        C: t6 STATUS Other (MESSAGES)
        S: * STATUS Other (MESSAGES 5)
        S: t6 OK STATUS completed
        """
    )


def test_reset_on_select_and_close(authed):
    """The saved result is emptied by SELECT/EXAMINE, CLOSE and UNSELECT (RFC 5182 section 2.1)."""
    fill(authed, 3, flagged=(1, 2, 3))
    authed.ok("t1 SEARCH RETURN (SAVE) FLAGGED")
    assert authed.ok("t2 SEARCH $")[0] == "* SEARCH 1 2 3"
    authed.ok("t3 EXAMINE INBOX")
    assert authed.ok("t4 SEARCH $")[0] == "* SEARCH"
    authed.ok("t5 SEARCH RETURN (SAVE) FLAGGED")
    authed.ok("t6 UNSELECT")
    authed.ok("t7 SELECT INBOX")
    assert authed.ok("t8 SEARCH $")[0] == "* SEARCH"
    authed.ok("t9 SEARCH RETURN (SAVE) FLAGGED")
    authed.ok("t10 CLOSE")
    authed.ok("t11 SELECT INBOX")
    assert authed.ok("t12 SEARCH $")[0] == "* SEARCH"


def test_failed_save_empties(authed):
    """A SEARCH ... SAVE that fails (BADCHARSET) leaves $ empty."""
    fill(authed, 2, flagged=(1, 2))
    authed.ok("t1 SEARCH RETURN (SAVE) FLAGGED")
    lines = authed.transact("t2 SEARCH RETURN (SAVE) CHARSET X-BOGUS SUBJECT x")
    assert lines[-1].startswith("t2 NO [BADCHARSET")
    assert authed.ok("t3 SEARCH $")[0] == "* SEARCH"


def test_capability_advertised(authed):
    """SEARCHRES is in the authenticated capability list."""
    assert "SEARCHRES" in authed.ok("c1 CAPABILITY")[0].split()


def test_uid_fetch_and_uid_expunge(authed):
    """$ in UID FETCH and UID EXPUNGE (RFC 4315) names the saved messages, by UID."""
    fill(authed, 4)
    authed.ok("d1 STORE 1:4 +FLAGS.SILENT (\\Deleted)")
    authed.script(
        """
        C: t1 SEARCH RETURN (SAVE) 2:3
        S: t1 OK SEARCH completed
        C: t2 UID FETCH $ (FLAGS)
        S: * 2 FETCH (UID 2 FLAGS (\\Deleted{{[^)]*}}))
        S: * 3 FETCH (UID 3 FLAGS (\\Deleted{{[^)]*}}))
        S: t2 OK UID FETCH completed
        C: t3 UID EXPUNGE $
        S: * 3 EXPUNGE
        S: * 2 EXPUNGE
        S: t3 OK UID EXPUNGE completed
        C: t4 SEARCH DELETED
        S: * SEARCH 1 2
        S: t4 OK SEARCH completed
        """
    )
