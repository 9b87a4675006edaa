"""
LSUB (RFC 3501 section 6.3.9) and its LIST-EXTENDED counterpart
(RFC 5258 section 3.5): a pattern ending in C{%} that stops above a
subscribed name lists the level it reaches, C{\\Noselect} (or, for LIST,
C{\\NonExistent} or the mailbox's own attributes, with CHILDINFO), on each
store.  Dovecot 2.3 answers these scripts alike (checked by hand against a
private instance: C{a/b/c} alone subscribed gives C{a} for C{%} and
C{a/b} for C{a/%}, nothing for C{%/b}).
"""


def test_lsub_percent_lists_unsubscribed_parents_noselect(authed):
    """a/b/c alone subscribed: % gives a, a/% and %/% give a/b, all \\Noselect; * gives a/b/c itself."""
    authed.ok("s1 SUBSCRIBE a/b/c")
    authed.script(
        """
        C: l1 LSUB "" "%"
        S: * LSUB (\\Noselect) "/" a
        S: l1 OK LSUB completed
        C: l2 LSUB "" "a/%"
        S: * LSUB (\\Noselect) "/" a/b
        S: l2 OK LSUB completed
        C: l3 LSUB "" "%/%"
        S: * LSUB (\\Noselect) "/" a/b
        S: l3 OK LSUB completed
        C: l4 LSUB "a/" "%"
        S: * LSUB (\\Noselect) "/" a/b
        S: l4 OK LSUB completed
        C: l5 LSUB "" "*"
        S: * LSUB (\\Noselect) "/" a/b/c
        S: l5 OK LSUB completed
        C: l6 LSUB "" "%/b"
        S: l6 OK LSUB completed
        """
    )


def test_lsub_percent_with_existing_and_subscribed_levels(authed):
    """An existing but unsubscribed parent is \\Noselect in LSUB; a subscribed one is listed once, as itself."""
    authed.ok("c1 CREATE x/y")
    authed.ok("s1 SUBSCRIBE x/y/z")
    authed.ok("c2 CREATE q")
    authed.ok("s2 SUBSCRIBE q")
    authed.ok("s3 SUBSCRIBE q/r/s")
    authed.ok("s4 SUBSCRIBE q/r")
    authed.script(
        """
        C: l1 LSUB "" "%"
        S: * LSUB (\\Noselect) "/" x
        S: * LSUB () "/" q
        S: l1 OK LSUB completed
        C: l2 LSUB "" "q/%"
        S: * LSUB (\\Noselect) "/" q/r
        S: l2 OK LSUB completed
        """
    )


def test_list_subscribed_recursivematch_for_the_same_case(authed):
    """RFC 5258 section 3.5: a/b/c alone subscribed gives a (or a/b) \\NonExistent with CHILDINFO."""
    authed.ok("s1 SUBSCRIBE a/b/c")
    authed.script(
        """
        C: l1 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"
        S: * LIST (\\NonExistent) "/" a ("CHILDINFO" ("SUBSCRIBED"))
        S: l1 OK LIST completed
        C: l2 LIST (SUBSCRIBED RECURSIVEMATCH) "" "a/%" RETURN (SUBSCRIBED)
        S: * LIST (\\NonExistent) "/" a/b ("CHILDINFO" ("SUBSCRIBED"))
        S: l2 OK LIST completed
        C: l3 LIST (SUBSCRIBED) "" "%"
        S: l3 OK LIST completed
        C: l4 LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"
        S: * LIST (\\NonExistent \\Subscribed) "/" a/b/c
        S: l4 OK LIST completed
        """
    )
