"""
IMAP4rev2 (RFC 9051) for clients that say ENABLE IMAP4rev2, next to
IMAP4rev1 for those that do not (RFC 9051 section 6.3.1, Appendix E), on
each store: the capability and ENABLE, SELECT's answer ([CLOSED], LIST, no
RECENT or [UNSEEN]), ESEARCH for every SEARCH, no \\Recent flag, and UTF-8
mailbox names in both directions.
"""

MSG = (
    b"From: Alice <alice@example.org>\r\n"
    b"Subject: message {n}\r\n"
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b"\r\n"
    b"Body {n}.\r\n"
)


def append(conv, count, mailbox="INBOX"):
    """APPEND C{count} messages to C{mailbox} (a wire name)."""
    for n in range(1, count + 1):
        data = MSG.replace(b"{n}", b"%d" % n)
        conv.ok(f"a{n} APPEND {mailbox} {{{len(data)}+}}\r\n".encode() + data)


def enable(conv):
    conv.script(
        """
        C: e1 ENABLE IMAP4rev2
        S: * ENABLED IMAP4rev2
        S: e1 OK ENABLE completed
        """
    )


def test_capability_and_enable(conv):
    """IMAP4rev2 is offered beside IMAP4rev1; ENABLE turns it on once, in any case."""
    conv.script(
        """
        C: c1 CAPABILITY
        S: * CAPABILITY IMAP4rev1 IMAP4rev2 {{.*}}
        S: c1 OK CAPABILITY completed
        C: l1 LOGIN demo secret
        S: l1 OK [CAPABILITY IMAP4rev1 IMAP4rev2 {{.*}}] Logged in
        C: e1 enable imap4rev2
        S: * ENABLED IMAP4rev2
        S: e1 OK ENABLE completed
        C: e2 ENABLE IMAP4rev2 CONDSTORE
        S: * ENABLED CONDSTORE
        S: e2 OK ENABLE completed
        """
    )
    assert conv.proto.imap4rev2


def test_select_answer(authed):
    """
    RFC 9051 section 6.3.2: no RECENT and no [UNSEEN] (Appendix E), a LIST
    of the mailbox with its attributes, and [CLOSED] when SELECT closes the
    mailbox selected before, without QRESYNC.
    """
    append(authed, 2)
    authed.ok('c1 CREATE INBOX/Sub')
    enable(authed)
    authed.script(
        """
        C: s1 SELECT INBOX
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
        S: * 2 EXISTS
        S: * OK [UIDVALIDITY {{\\d+}}] UIDs valid
        S: * OK [UIDNEXT 3] Predicted next UID
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.
        S: * LIST (\\HasChildren) "/" INBOX
        S: * OK [HIGHESTMODSEQ {{\\d+}}] Highest
        S: s1 OK [READ-WRITE] SELECT completed
        C: s2 EXAMINE inbox/Sub
        S: * OK [CLOSED] Previous mailbox closed.
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
        S: * 0 EXISTS
        S: * OK [UIDVALIDITY {{\\d+}}] UIDs valid
        S: * OK [UIDNEXT 1] Predicted next UID
        S: * OK [PERMANENTFLAGS ()] Read-only mailbox.
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" INBOX/Sub
        S: * OK [HIGHESTMODSEQ {{\\d+}}] Highest
        S: s2 OK [READ-ONLY] EXAMINE completed
        C: s3 SELECT Missing
        S: * OK [CLOSED] Previous mailbox closed.
        S: s3 NO {{.*}}
        """
    )
    assert authed.proto.state == "auth"


def test_search_always_esearch(authed):
    """
    RFC 9051 section 6.4.4: SEARCH and UID SEARCH answer ESEARCH, ALL when
    no RETURN is given; RETURN options and SAVE work as before.
    """
    append(authed, 3)
    enable(authed)
    authed.ok("s1 SELECT INBOX")
    authed.ok("f1 STORE 2 +FLAGS.SILENT (\\Flagged)")
    authed.script(
        """
        C: t1 SEARCH ALL
        S: * ESEARCH (TAG "t1") ALL 1:3
        S: t1 OK SEARCH completed
        C: t2 UID SEARCH NOT FLAGGED
        S: * ESEARCH (TAG "t2") UID ALL 1,3
        S: t2 OK UID SEARCH completed
        C: t3 SEARCH DELETED
        S: * ESEARCH (TAG "t3")
        S: t3 OK SEARCH completed
        C: t4 UID SEARCH DELETED
        S: * ESEARCH (TAG "t4") UID
        S: t4 OK UID SEARCH completed
        C: t5 SEARCH RETURN (COUNT) ALL
        S: * ESEARCH (TAG "t5") COUNT 3
        S: t5 OK SEARCH completed
        C: t6 SEARCH RETURN (SAVE) FLAGGED
        S: t6 OK SEARCH completed
        C: t7 UID SEARCH $
        S: * ESEARCH (TAG "t7") UID ALL 2
        S: t7 OK UID SEARCH completed
        C: t8 SEARCH MODSEQ 1
        S: * OK [HIGHESTMODSEQ {{\\d+}}] Highest
        S: * ESEARCH (TAG "t8") ALL 1:3 MODSEQ {{\\d+}}
        S: t8 OK SEARCH completed
        """
    )


def test_no_recent_and_uid_in_unsolicited_fetch(authed, new_conv):
    """
    RFC 9051 Appendix E item 12: no \\Recent in FETCH or STORE flags, and
    no RECENT response when new mail is announced; section 7.5.2: a flag
    change made elsewhere comes as a FETCH with UID.
    """
    append(authed, 1)
    enable(authed)
    authed.ok("s1 SELECT INBOX")
    other = new_conv()
    other.login()
    append(other, 1)
    other.ok("o1 SELECT INBOX")
    other.ok("o2 STORE 1 +FLAGS.SILENT (\\Flagged)")
    authed.script(
        """
        C: n1 NOOP
        S: * 1 FETCH (UID 1 FLAGS (\\Flagged))
        S: * 2 EXISTS
        S: n1 OK NOOP completed
        C: f1 FETCH 1:* FLAGS
        S: * 1 FETCH (FLAGS (\\Flagged))
        S: * 2 FETCH (FLAGS ())
        S: f1 OK FETCH completed
        C: f2 STORE 1 +FLAGS (\\Seen)
        S: * 1 FETCH (FLAGS (\\Flagged \\Seen))
        S: f2 OK STORE completed
        """
    )
    # Message 1 is this session's \\Recent one (SEARCH keeps its meaning);
    # it is only not shown.
    assert authed.proto.selected.recent == {1}


def test_utf8_names(authed, new_conv):
    """
    RFC 9051 section 5.1: names in UTF-8 both ways: CREATE, LIST (and its
    pattern), STATUS, SELECT's LIST, RENAME, COPY, MOVE, APPEND, LSUB; an
    IMAP4rev1 session sees the same mailboxes in modified UTF-7.
    """
    append(authed, 2)
    enable(authed)
    authed.script(
        """
        C: c1 CREATE "Entwürfe"
        S: c1 OK CREATE completed
        C: c2 CREATE a&b
        S: c2 OK CREATE completed
        C: c3 CREATE "日本語/"
        S: c3 OK CREATE completed
        C: l1 LIST "" "Entw*"
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" "Entwürfe"
        S: l1 OK LIST completed
        C: l2 LIST "" %
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" INBOX
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" "Entwürfe"
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" a&b
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" "日本語"
        S: l2 OK LIST completed
        C: a1 APPEND "Entwürfe" {4+}
        C: hi!!
        S: a1 OK [APPENDUID {{\\d+}} 1] APPEND completed
        C: r1 RENAME "日本語" "日本語2"
        S: r1 OK RENAME completed
        C: u1 SUBSCRIBE "Entwürfe"
        S: u1 OK SUBSCRIBE completed
        C: u2 LSUB "" *
        S: * LSUB () "/" "Entwürfe"
        S: u2 OK LSUB completed
        C: t1 STATUS "Entwürfe" (MESSAGES)
        S: * STATUS "Entwürfe" (MESSAGES 1)
        S: t1 OK STATUS completed
        C: s1 SELECT INBOX
        S: * FLAGS {{.*}}
        S: * 2 EXISTS
        S: * OK [UIDVALIDITY {{\\d+}}] UIDs valid
        S: * OK [UIDNEXT 3] Predicted next UID
        S: * OK [PERMANENTFLAGS {{.*}}] Flags permitted.
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" INBOX
        S: * OK [HIGHESTMODSEQ {{\\d+}}] Highest
        S: s1 OK [READ-WRITE] SELECT completed
        C: k1 COPY 1 "Entwürfe"
        S: k1 OK [COPYUID {{\\d+}} 1 2] COPY completed
        C: m1 MOVE 2 "日本語2"
        S: * OK [COPYUID {{\\d+}} 2 1] {{.*}}
        S: * 2 EXPUNGE
        S: m1 OK MOVE completed
        C: s2 EXAMINE "Entwürfe"
        S: * OK [CLOSED] Previous mailbox closed.
        S: * FLAGS {{.*}}
        S: * 2 EXISTS
        S: * OK [UIDVALIDITY {{\\d+}}] UIDs valid
        S: * OK [UIDNEXT 3] Predicted next UID
        S: * OK [PERMANENTFLAGS ()] Read-only mailbox.
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" "Entwürfe"
        S: * OK [HIGHESTMODSEQ {{\\d+}}] Highest
        S: s2 OK [READ-ONLY] EXAMINE completed
        """
    )
    rev1 = new_conv()
    rev1.login()
    rev1.script(
        """
        C: l1 LIST "" %
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" INBOX
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" Entw&APw-rfe
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" a&-b
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" &ZeVnLIqe-2
        S: l1 OK LIST completed
        C: t1 STATUS &ZeVnLIqe-2 (MESSAGES)
        S: * STATUS &ZeVnLIqe-2 (MESSAGES 1)
        S: t1 OK STATUS completed
        """
    )


def test_utf8_names_are_not_modified_utf7(authed, new_conv):
    """
    For an IMAP4rev2 client C{&} is just a character: C{&AOk-} names a
    mailbox with that spelling, not C{é} (RFC 9051 section 5.1).
    """
    enable(authed)
    authed.script(
        """
        C: c1 CREATE &AOk-
        S: c1 OK CREATE completed
        C: l1 LIST "" "&*"
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" &AOk-
        S: l1 OK LIST completed
        C: t1 STATUS "é" (MESSAGES)
        S: t1 NO {{.*}}
        """
    )
    rev1 = new_conv()
    rev1.login()
    rev1.script(
        """
        C: l1 LIST "" "&-*"
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" &-AOk-
        S: l1 OK LIST completed
        """
    )


def test_utf8_name_checks(authed):
    """
    RFC 9051 section 5.1: names that are not Net-Unicode (not NFC, C1
    controls) are not created; bytes that are not UTF-8 are a BAD; the
    escapes refused for IMAP4rev1 are refused here too.
    """
    enable(authed)
    authed.send('c1 CREATE "e\u0301t\u00e9"\r\n'.encode())
    assert authed.lines() == [
        "c1 NO [CANNOT] Mailbox name is not in Unicode NFC (RFC 9051 section 5.1)"]
    authed.send(b'c2 CREATE "caf\xe9"\r\n')
    assert authed.lines() == ["c2 BAD Mailbox name is not valid UTF-8"]
    authed.send('c3 CREATE "a\u0085b"\r\n'.encode())
    assert authed.lines() == ["c3 NO [CANNOT] Mailbox name contains control characters"]
    authed.send('c4 CREATE "../é"\r\n'.encode())
    assert authed.lines()[-1].startswith("c4 NO [CANNOT]")
    authed.ok('c5 CREATE "x"')
    authed.send('r1 RENAME x "e\u0301"\r\n'.encode())
    assert authed.lines()[-1].startswith("r1 NO [CANNOT]")
    authed.script(
        """
        C: l1 LIST "" *
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" x
        S: l1 OK LIST completed
        """
    )


def test_enable_while_selected(authed):
    """ENABLE after SELECT (RFC 5161 lets servers allow it) changes the view at once."""
    append(authed, 1)
    authed.ok("s1 SELECT INBOX")
    authed.script(
        """
        C: f1 FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS (\\Recent))
        S: f1 OK FETCH completed
        C: e1 ENABLE IMAP4rev2
        S: * ENABLED IMAP4rev2
        S: e1 OK ENABLE completed
        C: f2 FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS ())
        S: f2 OK FETCH completed
        C: t1 SEARCH ALL
        S: * ESEARCH (TAG "t1") ALL 1
        S: t1 OK SEARCH completed
        """
    )


def test_imap4rev1_unchanged(authed, new_conv):
    """
    A client that never enables IMAP4rev2 gets IMAP4rev1 exactly: RECENT
    and [UNSEEN] in SELECT, no LIST there and no [CLOSED], SEARCH answers,
    \\Recent, RECENT on new mail, flag updates without UID and modified
    UTF-7 names.
    """
    append(authed, 1)
    authed.ok('c1 CREATE "Entw&APw-rfe"')
    authed.script(
        """
        C: s1 SELECT INBOX
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
        S: * 1 EXISTS
        S: * 1 RECENT
        S: * OK [UNSEEN 1] First unseen.
        S: * OK [UIDVALIDITY {{\\d+}}] UIDs valid
        S: * OK [UIDNEXT 2] Predicted next UID
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.
        S: * OK [HIGHESTMODSEQ {{\\d+}}] Highest
        S: s1 OK [READ-WRITE] SELECT completed
        C: t1 SEARCH ALL
        S: * SEARCH 1
        S: t1 OK SEARCH completed
        C: f1 FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS (\\Recent))
        S: f1 OK FETCH completed
        """
    )
    other = new_conv()
    other.login()
    append(other, 1)
    other.ok("o1 SELECT INBOX")
    other.ok("o2 STORE 1 +FLAGS.SILENT (\\Flagged)")
    authed.script(
        """
        C: n1 NOOP
        S: * 1 FETCH (FLAGS (\\Flagged \\Recent))
        S: * 2 EXISTS
        S: * 1 RECENT
        S: n1 OK NOOP completed
        C: l1 LIST "" Entw*
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" Entw&APw-rfe
        S: l1 OK LIST completed
        C: s2 EXAMINE Entw&APw-rfe
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
        S: * 0 EXISTS
        S: * 0 RECENT
        S: * OK [UIDVALIDITY {{\\d+}}] UIDs valid
        S: * OK [UIDNEXT 1] Predicted next UID
        S: * OK [PERMANENTFLAGS ()] Read-only mailbox.
        S: * OK [HIGHESTMODSEQ {{\\d+}}] Highest
        S: s2 OK [READ-ONLY] EXAMINE completed
        """
    )
    assert not authed.proto.imap4rev2


def test_utf8_names_in_extended_list_and_quota(authed):
    """
    UTF-8 names also in LIST-EXTENDED (RFC 9051 section 6.3.9: SUBSCRIBED
    with \\NonExistent, RETURN (STATUS)) and in GETQUOTAROOT's answer.
    """
    enable(authed)
    authed.ok('c1 CREATE "Gesendete Objekte/Ärger"')
    authed.ok('u1 SUBSCRIBE "Gelöscht"')
    authed.script(
        """
        C: l1 LIST (SUBSCRIBED) "" "*"
        S: * LIST (\\NonExistent \\Subscribed) "/" "Gelöscht"
        S: l1 OK LIST completed
        C: l2 LIST "" "Gesendete Objekte/%" RETURN (STATUS (MESSAGES))
        S: * LIST (\\HasNoChildren{{( \\\\NoInferiors)?}}) "/" "Gesendete Objekte/Ärger"
        S: * STATUS "Gesendete Objekte/Ärger" (MESSAGES 0)
        S: l2 OK LIST completed
        C: q1 GETQUOTAROOT "Gesendete Objekte/Ärger"
        S: * QUOTAROOT "Gesendete Objekte/Ärger"
        S: q1 OK GETQUOTAROOT completed
        """
    )


def test_response_text_utf8_only_after_enable(authed, new_conv):
    """
    RFC 9051 Appendix E item 24: human-readable text may hold UTF-8 only
    after ENABLE IMAP4rev2; IMAP4rev1 text is 7-bit (RFC 3501 TEXT-CHAR),
    so a mailbox name quoted in an error loses its non-ASCII characters.
    """
    authed.ok("c1 CREATE Entw&APw-rfe")
    authed.send(b"c2 CREATE Entw&APw-rfe\r\n")
    raw = authed.output()
    assert raw.isascii() and raw.startswith(b"c2 NO [ALREADYEXISTS] ") and b"Entw?rfe" in raw
    enable(authed)
    authed.send('c3 CREATE "Entwürfe"\r\n'.encode())
    raw = authed.output()
    assert raw.startswith(b"c3 NO [ALREADYEXISTS] ") and "Entwürfe".encode() in raw
