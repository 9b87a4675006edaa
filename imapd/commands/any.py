# -*- test-case-name: tests.imapd.commands.test_any -*-
"""
Commands valid in any state: CAPABILITY, NOOP, LOGOUT (RFC 3501 section
6.1), ID (RFC 2971), and ENABLE (RFC 5161, authenticated state).

We offer IMAP4rev1 and IMAP4rev2 side by side (RFC 9051 section 6.1.1 and
Appendix E): a client speaks IMAP4rev1 until it says C{ENABLE IMAP4rev2};
after that C{session.imap4rev2} is true and the formatters it changes
(mailbox names, SEARCH, SELECT, FLAGS) answer the RFC 9051 way.
"""

from __future__ import annotations

import ipaddress

from imapd import wire
from imapd.logtext import log_safe
from imapd.parser.types import Capability, Enable, Id, Logout, Noop

__all__ = ["capabilities", "highestmodseq_line", "handle_capability", "handle_noop", "handle_logout",
           "handle_id", "handle_enable"]

#: Extensions advertised once authenticated (and their RFCs).
_AUTH_CAPS = (
    "IMAP4rev1",
    "IMAP4rev2",    # RFC 9051, once enabled (ENABLE IMAP4rev2)
    "LITERAL+",     # RFC 7888
    "SASL-IR",      # RFC 4959
    "ID",           # RFC 2971
    "ENABLE",       # RFC 5161
    "IDLE",         # RFC 2177
    "NAMESPACE",    # RFC 2342
    "UIDPLUS",      # RFC 4315
    "MOVE",         # RFC 6851
    "UNSELECT",     # RFC 3691
    "CHILDREN",     # RFC 3348
    "SORT",         # RFC 5256
    "SORT=DISPLAY", # RFC 5957
    "ESORT",        # RFC 5267 section 3
    "THREAD=ORDEREDSUBJECT",  # RFC 5256
    "THREAD=REFERENCES",      # RFC 5256
    "THREAD=REFS",            # draft-ietf-morg-inthread, as Dovecot
    "I18NLEVEL=1",            # RFC 5255 (i;unicode-casemap, imapd.sort.collate)
    # LITERAL- (RFC 7888 section 5) is not advertised: it is LITERAL+
    # limited to 4096-octet non-synchronizing literals, an alternative to
    # LITERAL+ rather than an addition; we accept {n+} of any size.
    "ESEARCH",                # RFC 4731
    "SEARCHRES",              # RFC 5182
    "CONTEXT=SEARCH",         # RFC 5267 section 4 (imapd.search.updates)
    "CONTEXT=SORT",           # RFC 5267 section 4, for SORT
    "NOTIFY",                 # RFC 5465 (imapd.commands.notify)
    "LIST-EXTENDED",          # RFC 5258
    "LIST-STATUS",            # RFC 5819
    "SPECIAL-USE",            # RFC 6154
    "CREATE-SPECIAL-USE",     # RFC 6154 section 3
    "STATUS=SIZE",            # RFC 8438
    "COMPRESS=DEFLATE",       # RFC 4978
    "MULTIAPPEND",            # RFC 3502 (one commit for all messages)
    "BINARY",                 # RFC 3516 (FETCH BINARY, APPEND literal8)
    "CATENATE",               # RFC 4469 (relative IMAP URLs, RFC 5092)
    "WITHIN",                 # RFC 5032 (YOUNGER/OLDER)
    # RFC 9208: one QUOTA=RES-* per resource limited; no QUOTASET, since
    # limits come from configuration (imapd.commands.quota).
    "QUOTA",                  # RFC 9208
    "QUOTA=RES-STORAGE",      # RFC 9208 section 5.1
    "QUOTA=RES-MESSAGE",      # RFC 9208 section 5.2
    "CONDSTORE",              # RFC 7162 (MODSEQs from storage.modseq)
    "QRESYNC",                # RFC 7162
    "SAVEDATE",               # RFC 8514 (Maildir: from the file name; mbox: NIL)
    "PREVIEW",                # RFC 8970 (imapd.message._preview, kept in the index)
    "URLAUTH",                # RFC 4467 (INTERNAL; own messages, imapd.urlauth)
    "URLAUTH=BINARY",         # RFC 5524 (URLFETCH BINARY, BODYPARTSTRUCTURE)
)

#: What ENABLE (RFC 5161) can turn on: the upper-case name the parser
#: gives -> the name kept in C{session.enabled} and echoed in ENABLED.
ENABLEABLE: dict[str, str] = {
    "CONDSTORE": "CONDSTORE",   # RFC 7162 section 3.1
    "QRESYNC": "QRESYNC",       # RFC 7162 section 3.2.3
    "IMAP4REV2": "IMAP4rev2",   # RFC 9051 section 6.3.1
}


def enable_condstore(session) -> None:
    """
    RFC 7162 section 3.1: a CONDSTORE enabling command (SELECT
    (CONDSTORE), FETCH MODSEQ or CHANGEDSINCE, STORE UNCHANGEDSINCE,
    SEARCH MODSEQ, STATUS HIGHESTMODSEQ) turns CONDSTORE on for the rest
    of the connection, as if the client had said ENABLE CONDSTORE.
    """
    session.enabled.add("CONDSTORE")
    view = session.selected
    if view is not None and not view.condstore:
        view.condstore = True
        # RFC 7162 section 3.1: enabled while a mailbox is selected, the
        # client learns that mailbox's HIGHESTMODSEQ before anything else
        # of the command (it missed it at SELECT, or ignored it).
        session.send(highestmodseq_line(view.highestmodseq))


def highestmodseq_line(highest: int) -> bytes:
    """
    RFC 7162 section 3.1.2.1 C{OK [HIGHESTMODSEQ n]}, or section 3.1.2.2
    C{OK [NOMODSEQ]} for a mailbox whose store keeps no MODSEQs.
    """
    if highest:
        return b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % highest
    return b"* OK [NOMODSEQ] No permanent modsequences\r\n"


def capabilities(session) -> list[str]:
    """The capability list for the session's current state."""
    if session.state != "nonauth":
        # RFC 7889: the largest message APPEND accepts is the literal limit.
        return list(_AUTH_CAPS) + [f"APPENDLIMIT={session.limits.max_literal}"]
    caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
    if not session.tls_active and session.context.tls is not None:
        caps.append("STARTTLS")
    if session.plaintext_auth_allowed:
        caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
    else:
        # RFC 3501 section 6.2.3: LOGIN is refused until TLS is up.
        caps.append("LOGINDISABLED")
    return caps


async def handle_capability(session, cmd: Capability):
    """RFC 3501 section 6.1.1."""
    session.send(("* CAPABILITY " + " ".join(capabilities(session)) + "\r\n").encode())


async def handle_noop(session, cmd: Noop):
    """RFC 3501 section 6.1.2: the dispatcher's re-sync does the work."""


async def handle_logout(session, cmd: Logout):
    """RFC 3501 section 6.1.3: BYE, then the tagged OK, then close."""
    session.logged_out = True
    session.send(b"* BYE Logging out\r\n")
    session.send(f"{cmd.tag} OK LOGOUT completed\r\n".encode())
    session.disconnect()


def _originating(session, params) -> None:
    """
    A trusted proxy (C{haproxy_trusted_networks}) relaying a client tells
    us the client's address in ID's C{x-originating-ip} and
    C{x-originating-port} before login, as Dovecot's and other IMAP
    proxies do; the log and the failed-login ledger then use it (and
    C{x-proxy-ttl} bounds further relays, L{imapd.cluster.relay}).  From
    anyone else, or after login, the fields are only logged.
    """
    if session.account is not None or not session.context.trusted_proxies:
        return
    fields = {k.lower(): v for k, v in params if v is not None}
    ip = fields.get(b"x-originating-ip")
    if ip is None:
        return
    peer = session.transport.getPeer() if session.transport is not None else None
    try:
        proxy = ipaddress.ip_address(getattr(peer, "host", ""))
        client = ipaddress.ip_address(ip.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return
    if not any(proxy in net for net in session.context.trusted_proxies):
        return
    port = fields.get(b"x-originating-port", b"")
    port = port.decode("ascii") if port.isdigit() else ""
    session.client_address = str(client)
    session.peer = f"{client}:{port}"
    ttl = fields.get(b"x-proxy-ttl", b"")
    if ttl.isdigit():
        # Hops left for a relayed login (imapd.cluster.relay).
        session.proxy_ttl = int(ttl)


async def handle_id(session, cmd: Id):
    """RFC 2971: say who we are; the client's parameters are only logged."""
    if cmd.params:
        # Kept for the logs of the mail worker a login process hands the
        # session to (issue 14, L{imapd.process.wire.SessionState}).
        session.client_id = tuple(
            (log_safe(k), None if v is None else log_safe(v)) for k, v in cmd.params[:30])
        # Client text: escaped (issue 18 item 9).
        session.log.info(
            "client id session={session} {params}",
            session=session.session_id,
            params=" ".join(f'{log_safe(k)}="{log_safe(v or b"")}"'
                            for k, v in cmd.params[:30]),
        )
    _originating(session, cmd.params or ())
    items = []
    for key, value in session.context.server_id.items():
        items += [wire.string(key), wire.string(value)]
    session.send(b"* ID " + wire.plist(items) + b"\r\n")


async def handle_enable(session, cmd: Enable):
    """
    RFC 5161: enable what we support; ignore the rest silently (section 3.1).
    """
    newly = []
    for c in cmd.capabilities:
        name = ENABLEABLE.get(c)
        if name is not None and name not in session.enabled and name not in newly:
            newly.append(name)
    session.enabled.update(newly)
    if "QRESYNC" in session.enabled:
        # RFC 7162 section 3.2.3: ENABLE QRESYNC implies CONDSTORE.
        session.enabled.add("CONDSTORE")
    view = session.selected
    was_condstore = view is not None and view.condstore
    if view is not None:
        # RFC 5161 section 3.1 asks clients to ENABLE before SELECT but
        # lets servers accept it after; the view then follows at once.
        view.condstore = "CONDSTORE" in session.enabled
        view.qresync = "QRESYNC" in session.enabled
        view.imap4rev2 = session.imap4rev2
    session.send(("* ENABLED" + "".join(" " + c for c in newly) + "\r\n").encode())
    if view is not None and view.condstore and not was_condstore:
        # RFC 7162 section 3.1: ENABLE CONDSTORE (or QRESYNC) is a
        # CONDSTORE enabling command like the others.
        session.send(highestmodseq_line(view.highestmodseq))
