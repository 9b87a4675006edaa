"""
LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE and
CREATE-SPECIAL-USE (RFC 6154): scripted conversations after the RFCs'
examples, on each store.
"""

import pytest


@pytest.fixture(params=["maildir"])
def store_kind(request):
    """
    Maildir only, unlike the other conversations: the RFCs' examples need
    a selectable mailbox with children (Fruit, Fruit/Apple), which the mbox
    layout cannot have (a folder is a file; Dovecot refuses it too).  What
    these scripts test is the protocol's LIST-EXTENDED logic, the same for
    every store.
    """
    return request.param


@pytest.fixture
def fruit(authed):
    """RFC 5258 section 5's mailboxes and subscriptions (Fruit/Peach is subscribed, not created)."""
    for name in ("Fruit", "Fruit/Apple", "Fruit/Banana", "Tofu", "Vegetable",
                 "Vegetable/Broccoli", "Vegetable/Corn"):
        authed.ok(f"c CREATE {name}")
    for name in ("INBOX", "Fruit/Banana", "Fruit/Peach", "Vegetable", "Vegetable/Broccoli"):
        authed.ok(f"s SUBSCRIBE {name}")
    return authed


def test_plain_list_unchanged(fruit):
    """Without extended syntax LIST answers as in RFC 3501, the delimiter request included."""
    fruit.script(
        """
        C: A01 LIST "" %
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasChildren) "/" Fruit
        S: * LIST (\\HasNoChildren) "/" Tofu
        S: * LIST (\\HasChildren) "/" Vegetable
        S: A01 OK LIST completed
        C: A02 LIST "" ""
        S: * LIST (\\Noselect) "/" ""
        S: A02 OK LIST completed
        """
    )


def test_rfc5258_subscribed(fruit):
    """RFC 5258 example 2: SUBSCRIBED selects subscribed names; missing ones are \\NonExistent."""
    fruit.script(
        """
        C: A02 LIST (SUBSCRIBED) "" "*"
        S: * LIST (\\HasNoChildren \\Subscribed) "/" INBOX
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Banana
        S: * LIST (\\NonExistent \\Subscribed) "/" Fruit/Peach
        S: * LIST (\\HasChildren \\Subscribed) "/" Vegetable
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Vegetable/Broccoli
        S: A02 OK LIST completed
        """
    )


def test_rfc5258_return_subscribed_children(fruit):
    """RFC 5258 examples 3-4: empty selection, RETURN (CHILDREN) and RETURN (SUBSCRIBED)."""
    fruit.script(
        """
        C: A03 LIST () "" "%" RETURN (CHILDREN)
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasChildren) "/" Fruit
        S: * LIST (\\HasNoChildren) "/" Tofu
        S: * LIST (\\HasChildren) "/" Vegetable
        S: A03 OK LIST completed
        C: A04 LIST "" "Fruit/%" RETURN (SUBSCRIBED)
        S: * LIST (\\HasNoChildren) "/" Fruit/Apple
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Banana
        S: A04 OK LIST completed
        """
    )


def test_rfc5258_recursivematch(fruit):
    """RFC 5258 example 5: RECURSIVEMATCH returns parents of subscribed children with CHILDINFO."""
    fruit.script(
        """
        C: A05 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)
        S: * LIST (\\HasNoChildren \\Subscribed) "/" INBOX
        S: * LIST (\\HasChildren) "/" Fruit ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\\HasChildren \\Subscribed) "/" Vegetable ("CHILDINFO" ("SUBSCRIBED"))
        S: A05 OK LIST completed
        C: A06 LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"
        S: * LIST (\\HasNoChildren \\Subscribed) "/" INBOX
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Banana
        S: * LIST (\\NonExistent \\Subscribed) "/" Fruit/Peach
        S: * LIST (\\HasChildren \\Subscribed) "/" Vegetable
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Vegetable/Broccoli
        S: A06 OK LIST completed
        """
    )


def test_several_patterns_and_remote(fruit):
    """RFC 5258 section 3: several patterns answer their union once; REMOTE changes nothing here."""
    fruit.script(
        """
        C: A07 LIST (REMOTE) "" ("INBOX" "Veg%" "%/Corn" "Veg*")
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasChildren) "/" Vegetable
        S: * LIST (\\HasNoChildren) "/" Vegetable/Broccoli
        S: * LIST (\\HasNoChildren) "/" Vegetable/Corn
        S: A07 OK LIST completed
        """
    )


def test_bad_options(fruit):
    """Unknown options and RECURSIVEMATCH alone are BAD (RFC 5258 section 3.1)."""
    fruit.script(
        """
        C: B1 LIST (RECURSIVEMATCH) "" "%"
        S: B1 BAD RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE
        C: B2 LIST (FOO) "" "%"
        S: B2 BAD Unknown LIST selection option FOO
        C: B3 LIST "" "%" RETURN (FOO)
        S: B3 BAD Unknown LIST return option FOO
        C: B4 LIST "" "%" RETURN (STATUS (BOGUS))
        S: B4 BAD Unknown STATUS item BOGUS
        """
    )


def test_rfc5819_list_status(fruit):
    """RFC 5819: a STATUS follows each selectable mailbox, none for \\NonExistent."""
    data = b"Subject: hi\r\n\r\nhello\r\n"
    fruit.send(b"a1 APPEND Fruit/Banana {%d+}\r\n" % len(data) + data + b"\r\n")
    assert fruit.lines()[-1].startswith("a1 OK")
    fruit.script(
        """
        C: A01 LIST (SUBSCRIBED) "" "Fruit/*" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))
        S: * LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Banana
        S: * STATUS Fruit/Banana (MESSAGES 1 UNSEEN 1 UIDNEXT 2)
        S: * LIST (\\NonExistent \\Subscribed) "/" Fruit/Peach
        S: A01 OK LIST completed
        C: A02 LIST "" "Tofu" RETURN (STATUS (MESSAGES))
        S: * LIST (\\HasNoChildren) "/" Tofu
        S: * STATUS Tofu (MESSAGES 0)
        S: A02 OK LIST completed
        """
    )


def test_rfc6154_special_use(authed):
    """RFC 6154: default names get \\Sent etc. in every LIST; SPECIAL-USE selects them."""
    for name in ("Sent", "drafts", "Trash", "Junk", "Archive", "Work", "Work/Sent"):
        authed.ok(f"c CREATE {name}")
    authed.script(
        """
        C: t1 LIST (SPECIAL-USE) "" "*"
        S: * LIST (\\Archive \\HasNoChildren) "/" Archive
        S: * LIST (\\HasNoChildren \\Junk) "/" Junk
        S: * LIST (\\HasNoChildren \\Sent) "/" Sent
        S: * LIST (\\HasNoChildren \\Trash) "/" Trash
        S: * LIST (\\Drafts \\HasNoChildren) "/" drafts
        S: t1 OK LIST completed
        C: t2 LIST "" "%" RETURN (SPECIAL-USE)
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\Archive \\HasNoChildren) "/" Archive
        S: * LIST (\\HasNoChildren \\Junk) "/" Junk
        S: * LIST (\\HasNoChildren \\Sent) "/" Sent
        S: * LIST (\\HasNoChildren \\Trash) "/" Trash
        S: * LIST (\\HasChildren) "/" Work
        S: * LIST (\\Drafts \\HasNoChildren) "/" drafts
        S: t2 OK LIST completed
        C: t3 LIST "" Sent
        S: * LIST (\\HasNoChildren \\Sent) "/" Sent
        S: t3 OK LIST completed
        """
    )


def test_create_special_use(authed):
    """RFC 6154 section 3: USE is accepted when it is the name's default use, else NO [USEATTR]."""
    authed.script(
        """
        C: t1 CREATE MySent (USE (\\Sent))
        S: t1 NO [USEATTR] {{.*}}
        C: t2 LIST "" MySent
        S: t2 OK LIST completed
        C: t3 CREATE Sent (USE (\\sent))
        S: t3 OK CREATE completed
        C: t4 CREATE Trash (USE (\\Trash \\Junk))
        S: t4 NO [USEATTR] {{.*}}
        C: t5 CREATE Other (USE ())
        S: t5 OK CREATE completed
        C: t6 CREATE Other2 (FOO (\\Sent))
        S: t6 BAD Unknown CREATE parameter FOO
        """
    )


def test_capabilities_advertised(authed):
    """The four capabilities are advertised once authenticated."""
    caps = authed.ok("c1 CAPABILITY")[0].split()
    for cap in ("LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "CREATE-SPECIAL-USE"):
        assert cap in caps


def _parse(raw: bytes):
    from imapd.parser import Parser, ParserLimits

    parser = Parser(ParserLimits(max_line=8192, max_literal=1024, max_literals_per_command=4))
    (event,) = list(parser.feed(raw))
    return event


def test_parser_extended_forms():
    """The parser builds ListExtended for any extended part and keeps plain LIST a List."""
    from imapd.parser.listext import CreateSpecialUse, ListExtended
    from imapd.parser.types import Create, List

    assert _parse(
        b'a LIST (SUBSCRIBED REMOTE RECURSIVEMATCH SPECIAL-USE) "" ("a" "b") '
        b"RETURN (SUBSCRIBED CHILDREN STATUS (MESSAGES UNSEEN) SPECIAL-USE)\r\n"
    ) == ListExtended(
        "a", ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"), b"", (b"a", b"b"),
        ("SUBSCRIBED", "CHILDREN", "STATUS", "SPECIAL-USE"), ("MESSAGES", "UNSEEN"),
    )
    assert _parse(b'a list () "" % return ()\r\n') == ListExtended("a", (), b"", (b"%",), (), ())
    assert _parse(b'a LIST "" %\r\n') == List("a", b"", b"%")
    assert _parse(b"a CREATE Sent (USE (\\Sent))\r\n") == CreateSpecialUse("a", b"Sent", ("\\Sent",))
    assert _parse(b"a CREATE Sent\r\n") == Create("a", b"Sent")


def test_rfc5258_example_9_recursivematch_childinfo(authed):
    """
    RFC 5258 section 5 example 9: CHILDINFO goes to a level with a
    subscribed descendant the pattern misses (foo2, eps2), not to one whose
    subscribed descendants all match (baz2, qux2); with "%" every level
    with a subscribed descendant below it gets it.
    """
    for name in ("foo2", "foo2/bar1", "foo2/bar2", "baz2", "baz2/bar2", "baz2/bar22",
                 "baz2/bar222", "eps2", "eps2/mamba", "qux2/bar2"):
        authed.ok(f"c CREATE {name}")
    for name in ("foo2/bar1", "foo2/bar2", "baz2/bar2", "baz2/bar22", "baz2/bar222",
                 "eps2", "eps2/mamba", "qux2/bar2"):
        authed.ok(f"s SUBSCRIBE {name}")
    authed.script(
        """
        C: D03 LIST (RECURSIVEMATCH SUBSCRIBED) "" "*2"
        S: * LIST (\\HasNoChildren \\Subscribed) "/" baz2/bar2
        S: * LIST (\\HasNoChildren \\Subscribed) "/" baz2/bar22
        S: * LIST (\\HasNoChildren \\Subscribed) "/" baz2/bar222
        S: * LIST (\\HasChildren \\Subscribed) "/" eps2 ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\\HasChildren) "/" foo2 ("CHILDINFO" ("SUBSCRIBED"))
        S: * LIST (\\HasNoChildren \\Subscribed) "/" foo2/bar2
        S: * LIST (\\HasNoChildren \\Subscribed) "/" qux2/bar2
        S: D03 OK LIST completed
        C: D04 LSUB "" "%"
        S: * LSUB (\\Noselect) "/" foo2
        S: * LSUB (\\Noselect) "/" baz2
        S: * LSUB () "/" eps2
        S: * LSUB (\\Noselect) "/" qux2
        S: D04 OK LSUB completed
        """
    )
