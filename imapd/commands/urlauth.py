# -*- test-case-name: tests.imapd.commands.test_urlauth -*-
"""
URLAUTH commands: GENURLAUTH, RESETKEY, URLFETCH (RFC 4467 section 7),
with URLFETCH's BODY, BINARY and BODYPARTSTRUCTURE (RFC 5524, URLAUTH=
BINARY).  Tokens, checks and resolution are L{imapd.urlauth}; see its
docstring for what may be fetched by whom.
"""

from __future__ import annotations

from imapd import mailboxname, wire
from imapd.errors import CommandFailed
from imapd.imapurl import BadUrl
from imapd.parser.urlauth import GenUrlAuth, ResetKey, UrlFetch
from imapd.urlauth import MECHANISMS, generate, keys_of, resolve

__all__ = ["handle_genurlauth", "handle_resetkey", "handle_urlfetch"]

_URLMECH = "URLMECH " + " ".join(MECHANISMS)


async def handle_genurlauth(session, cmd: GenUrlAuth):
    """RFC 4467 section 7.1: one C{* GENURLAUTH} with every URL, or NO."""
    store = session.account.store
    user = session.account.user
    urls = []
    for rump, mechanism in cmd.requests:
        try:
            urls.append(await session.run(generate, store, user, rump, mechanism))
        except BadUrl as e:
            raise CommandFailed(e.reason) from None
    session.send(b"* GENURLAUTH " + b" ".join(wire.string(u) for u in urls) + b"\r\n")


def _exists(store, name: str) -> None:
    store.open(name, True).close()


async def handle_resetkey(session, cmd: ResetKey):
    """
    RFC 4467 section 7.2: new access key for one mailbox (URLs made with
    the old one stop working), or for all of them.
    """
    store = session.account.store
    keys = keys_of(store)
    if cmd.mailbox is None:
        await session.run(keys.reset)
        return None
    for mechanism in cmd.mechanisms:
        if mechanism not in MECHANISMS:
            raise CommandFailed(f"Unsupported URLAUTH mechanism {mechanism[:32]}")
    name = mailboxname.from_wire(cmd.mailbox, utf8=session.imap4rev2)
    await session.run(_exists, store, name)  # NO [NONEXISTENT] when missing
    await session.run(keys.reset, name)
    # Section 8: URLMECH names the mechanisms of the mailbox's new key;
    # in the tagged OK, as Dovecot sends it.
    return _URLMECH, "RESETKEY completed"


def _literal(data: bytes, binary: bool = False) -> bytes:
    # RFC 3516 section 4.2: NUL only in a literal8; message data in a
    # plain literal has NUL as 0x80, as FETCH does (imapd.fetch.render).
    if binary and b"\x00" in data:
        return b"~" + wire.literal(data)
    return wire.literal(data.replace(b"\x00", b"\x80"))


async def handle_urlfetch(session, cmd: UrlFetch):
    """
    RFC 4467 section 7.3 (one C{* URLFETCH url data} per URL, NIL for one
    that does not verify) and RFC 5524 section 3 (the parenthesized form,
    answered as C{(BODYPARTSTRUCTURE (...) BINARY ~{n}...)}, BODY when no
    data item is named, as Dovecot does).
    """
    account = session.account
    user = account.user
    submit_user = session.context.urlauth_submit_user
    for arg in cmd.args:
        head = b"* URLFETCH " + wire.string(arg.url) + b" "
        try:
            # The owner's store, when it is another user's, is opened and
            # read in the pool too (imapd.urlauth.resolve).
            found = await session.run(resolve, account, arg.url, None, submit_user)
        except BadUrl as e:
            session.log.info("URLFETCH refused for {user}: {reason}", user=user, reason=e.reason)
            session.send(head + b"NIL\r\n")
            continue
        if arg.params is None:
            session.send(head + _literal(found.data) + b"\r\n")
            continue
        items = []
        if "BODYPARTSTRUCTURE" in arg.params:
            structure = found.bodypartstructure()
            items.append(b"BODYPARTSTRUCTURE " + (structure if structure is not None else wire.NIL))
        if "BINARY" in arg.params:
            data = found.binary()
            items.append(b"BINARY " + (wire.NIL if data is None else _literal(data, True)))
        elif "BODY" in arg.params or not arg.params:
            items.append(b"BODY " + _literal(found.data))
        session.send(head + b"(" + b" ".join(items) + b")\r\n")
