"""
QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT, SETQUOTA refused, STATUS
DELETED/DELETED-STORAGE, and NO [OVERQUOTA] on APPEND (MULTIAPPEND all or
nothing), COPY and MOVE, on each store.  Limits come from the server
context (L{imapd.server.QuotaPolicy}), as the configuration sets them.
"""

import pytest

from imapd.server import QuotaLimits, QuotaPolicy


def message(size: int, subject: str = "q") -> bytes:
    """A message of exactly C{size} octets, CRLF line ends."""
    head = f"Subject: {subject}\r\n\r\n".encode()
    body = b"x" * (size - len(head) - 2) + b"\r\n"
    return head + body


def append(conv, tag: str, data: bytes, mailbox: str = "INBOX") -> str:
    conv.send(f"{tag} APPEND {mailbox} {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    return conv.lines()[-1]


@pytest.fixture
def limited(server, authed):
    """An authenticated session whose user has 512 KiB and 3 messages."""
    server.quota = QuotaPolicy(QuotaLimits(storage=512, messages=3))
    return authed


def test_capabilities(authed):
    """QUOTA and one QUOTA=RES-* per resource; no QUOTASET (SETQUOTA is refused)."""
    caps = authed.ok("c1 CAPABILITY")[0].split()
    assert {"QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"} <= set(caps)
    assert "QUOTASET" not in caps


def test_rfc_example_getquotaroot_and_getquota(server, authed):
    """The RFC's example: INBOX under root "", STORAGE 10 of 512."""
    server.quota = QuotaPolicy(QuotaLimits(storage=512))
    assert append(authed, "a1", message(10 * 1024)).startswith("a1 OK")
    authed.script(
        """
        C: A003 GETQUOTAROOT INBOX
        S: * QUOTAROOT INBOX ""
        S: * QUOTA "" (STORAGE 10 512)
        S: A003 OK GETQUOTAROOT completed
        C: G0001 GETQUOTA ""
        S: * QUOTA "" (STORAGE 10 512)
        S: G0001 OK GETQUOTA completed
        """
    )


def test_usage_sums_every_mailbox(limited):
    """Usage covers all of the user's mailboxes; STORAGE rounds up to whole KiB."""
    limited.ok("c1 CREATE Archive/2024")
    assert append(limited, "a1", message(1000)).startswith("a1 OK")
    assert append(limited, "a2", message(1100), "Archive/2024").startswith("a2 OK")
    limited.script(
        """
        C: g1 GETQUOTAROOT Archive/2024
        S: * QUOTAROOT Archive/2024 ""
        S: * QUOTA "" (STORAGE 3 512 MESSAGE 2 3)
        S: g1 OK GETQUOTAROOT completed
        """
    )


def test_no_limit_means_no_root(authed):
    """A user without any limit has no quota root; GETQUOTA names none."""
    authed.script(
        """
        C: g1 GETQUOTAROOT INBOX
        S: * QUOTAROOT INBOX
        S: g1 OK GETQUOTAROOT completed
        C: g2 GETQUOTA ""
        S: g2 NO [NONEXISTENT] No such quota root
        """
    )


def test_unknown_root_and_mailbox(limited):
    """GETQUOTA of another root and GETQUOTAROOT of a missing mailbox are NO."""
    limited.script(
        """
        C: g1 GETQUOTA "#user/alice"
        S: g1 NO [NONEXISTENT] No such quota root
        C: g2 GETQUOTAROOT Nowhere
        S: g2 NO [NONEXISTENT] {{.*}}
        """
    )


def test_setquota_refused_and_checked(limited):
    """SETQUOTA is NO (limits are configuration); a malformed one is BAD."""
    limited.script(
        """
        C: s1 SETQUOTA "" (STORAGE 512)
        S: s1 NO [NOPERM] Quota limits are set in the server configuration, not over IMAP
        C: s2 SETQUOTA "" (STORAGE)
        S: s2 BAD {{.*}}
        C: s3 GETQUOTA
        S: s3 BAD {{.*}}
        C: g1 GETQUOTA ""
        S: * QUOTA "" (STORAGE 0 512 MESSAGE 0 3)
        S: g1 OK GETQUOTA completed
        """
    )


def test_append_over_storage_is_refused(server, authed):
    """An APPEND that would pass the storage limit is NO [OVERQUOTA] and adds nothing."""
    server.quota = QuotaPolicy(QuotaLimits(storage=4))
    assert append(authed, "a1", message(3000)).startswith("a1 OK")
    assert append(authed, "a2", message(1096)).startswith("a2 OK")  # exactly 4096
    assert append(authed, "a3", message(100)).startswith("a3 NO [OVERQUOTA] Quota exceeded")
    assert authed.ok("s1 STATUS INBOX (MESSAGES)")[0] == "* STATUS INBOX (MESSAGES 2)"


def test_bare_lf_counts_as_crlf(server, authed):
    """The size checked is RFC822.SIZE, with LF line ends counted as CRLF."""
    server.quota = QuotaPolicy(QuotaLimits(storage=1))
    data = b"Subject: lf\n\n" + b"y\n" * 340  # 693 octets, 1035 once stored with CRLF
    assert append(authed, "a1", data).startswith("a1 NO [OVERQUOTA]")


def test_multiappend_all_or_nothing(limited):
    """RFC 3502 + RFC 9208: three messages when two fit: none is appended."""
    assert append(limited, "a1", message(200)).startswith("a1 OK")
    a = message(100)
    limited.send(
        b"a2 APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s {%d+}\r\n%s\r\n"
        % (len(a), a, len(a), a, len(a), a)
    )
    assert limited.lines()[-1].startswith("a2 NO [OVERQUOTA]")
    assert limited.ok("s1 STATUS INBOX (MESSAGES)")[0] == "* STATUS INBOX (MESSAGES 1)"
    limited.send(b"a3 APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(a), a, len(a), a))
    assert limited.lines()[-1].startswith("a3 OK [APPENDUID")
    assert limited.ok("s2 STATUS INBOX (MESSAGES)")[0] == "* STATUS INBOX (MESSAGES 3)"


def test_copy_refused_move_allowed(limited):
    """COPY past the message limit is NO [OVERQUOTA]; MOVE within the root changes no usage."""
    for tag in ("a1", "a2"):
        assert append(limited, tag, message(300)).startswith(f"{tag} OK")
    limited.ok("c1 CREATE Keep")
    limited.ok("s1 SELECT INBOX")
    limited.script(
        """
        C: c2 COPY 1:2 Keep
        S: c2 NO [OVERQUOTA] {{Quota exceeded: 2 of 3 messages used.*}}
        C: c3 UID COPY 1 Keep
        S: c3 OK [COPYUID {{\\d+}} 1 1] COPY completed
        C: c4 COPY 2 Keep
        S: c4 NO [OVERQUOTA] {{.*}}
        C: m1 MOVE 2 Keep
        S: * OK [COPYUID {{\\d+}} 2 2] Moved
        S: * 2 EXPUNGE
        S: m1 OK MOVE completed
        C: g1 GETQUOTA ""
        S: * QUOTA "" (STORAGE 1 512 MESSAGE 3 3)
        S: g1 OK GETQUOTA completed
        """
    )


def test_per_user_override(server, new_conv):
    """A user's own limits replace the default; a resource left out keeps the default."""
    server.quota = QuotaPolicy(
        QuotaLimits(storage=100, messages=5),
        users=(("other", QuotaLimits(storage=2048, messages=5)),),
    )
    alice = new_conv()
    alice.ok("l1 LOGIN other pw")
    demo = new_conv()
    demo.login()
    assert alice.ok('g1 GETQUOTA ""')[0] == '* QUOTA "" (STORAGE 0 2048 MESSAGE 0 5)'
    assert demo.ok('g1 GETQUOTA ""')[0] == '* QUOTA "" (STORAGE 0 100 MESSAGE 0 5)'


def test_status_deleted_items(authed):
    """RES-MESSAGE needs STATUS DELETED, RES-STORAGE DELETED-STORAGE (octets of \\Deleted messages)."""
    a, b = message(500), message(700)
    assert append(authed, "a1", a).startswith("a1 OK")
    assert append(authed, "a2", b).startswith("a2 OK")
    authed.ok("s1 SELECT INBOX")
    authed.ok("f1 STORE 2 +FLAGS (\\Deleted)")
    authed.script(
        """
        C: t1 STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)
        S: * STATUS INBOX (MESSAGES 2 DELETED 1 DELETED-STORAGE 700)
        S: t1 OK STATUS completed
        C: t2 LIST "" INBOX RETURN (STATUS (DELETED))
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * STATUS INBOX (DELETED 1)
        S: t2 OK LIST completed
        """
    )


def test_usage_is_never_stale_across_sessions(server, authed, new_conv):
    """Each check reads usage from the store: another session's APPEND counts at once."""
    server.quota = QuotaPolicy(QuotaLimits(messages=2))
    other = new_conv()
    other.login()
    assert append(authed, "a1", message(100)).startswith("a1 OK")
    assert other.ok('g1 GETQUOTA ""')[0] == '* QUOTA "" (MESSAGE 1 2)'
    assert append(other, "a2", message(100)).startswith("a2 OK")
    assert append(authed, "a3", message(100)).startswith("a3 NO [OVERQUOTA]")
    authed.ok("s1 SELECT INBOX")
    authed.ok("f1 STORE 1 +FLAGS (\\Deleted)")
    authed.ok("e1 EXPUNGE")
    assert append(other, "a4", message(100)).startswith("a4 OK")
