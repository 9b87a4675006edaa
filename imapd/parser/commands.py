# -*- test-case-name: tests.imapd.parser.test_parser_commands -*-
"""
The command table: command name -> the function that parses its
arguments into a typed command from L{imapd.parser.types}.

Each function has the signature C{(tag, buf, pos, ctx) -> Command}, where
C{pos} points just after the command name (at the SP before the first
argument, or at the final CRLF), and must consume the whole command,
ending with L{parse_end}.  They are short chains of the primitives, in
the order the RFC 3501 section 9 grammar gives; the section of each
command is cited where it is defined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

from imapd.parser.context import parse_cancelupdate, parse_return_options
from imapd.parser.datetime_ import parse_date_time
from imapd.parser.fetchatt import parse_fetch_atts
from imapd.parser.listext import parse_create, parse_list
from imapd.parser.notify import parse_notify
from imapd.parser.quota import parse_getquota, parse_getquotaroot, parse_setquota
from imapd.parser.urlauth import parse_genurlauth, parse_resetkey, parse_urlfetch
from imapd.parser.primitives import (
    NotParseable, describe, parse_astring, parse_atom, parse_end,
    parse_flag, parse_flag_list, parse_list_mailbox, parse_literal,
    parse_mailbox, parse_modseq, parse_nstring, parse_paren_list,
    parse_raw_value, parse_space, parse_string, at_end,
)
from imapd.parser.searchkey import parse_search_keys
from imapd.parser.sequence import parse_sequence_set
from imapd.parser.sort import (
    parse_sort, parse_thread, parse_uid_sort, parse_uid_thread,
)
from imapd.parser.types import (
    Append, AppendMessage, Authenticate, Capability, Check, Close, Command,
    CatenatePart, Compress,
    Copy, Delete, Enable, Expunge, Fetch, Id, Idle, Login,
    Logout, Lsub, Move, Namespace, Noop, Rename, Search, SearchKey, Select,
    StartTLS, Status, Store, StoreAction, Subscribe, Unselect, Unsubscribe,
)

__all__ = ["Context", "COMMANDS", "UID_COMMANDS", "parse_command_args"]


@dataclass(frozen=True, slots=True)
class Context:
    """
    What argument parsers need besides the bytes: the nesting limit, and
    optionally a list that collects CATENATE URLs as they are parsed (the
    receiver uses it on a command that stops at a literal).
    """

    max_depth: int = 32
    urls: Optional[list] = None


CommandParser = Callable[[str, bytes, int, Context], Command]


def _sp(buf: bytes, pos: int) -> int:
    return parse_space(buf, pos)[1]


def _upper_atom(buf: bytes, pos: int) -> tuple[str, int]:
    atom, pos = parse_atom(buf, pos)
    return atom.upper().decode("ascii"), pos


# --------------------------------------------------------------------------
# Any state (RFC 3501 section 6.1) and not-authenticated (section 6.2)


def _no_args(cls: type[Command]) -> CommandParser:
    """Commands that take no arguments: only the CRLF may follow."""
    def parse(tag: str, buf: bytes, pos: int, ctx: Context) -> Command:
        parse_end(buf, pos)
        return cls(tag)
    parse.__doc__ = "%s takes no arguments." % cls.name
    return parse


_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}\Z")


def parse_authenticate(tag: str, buf: bytes, pos: int,
                       ctx: Context) -> Command:
    """RFC 3501 6.2.2 + RFC 4959: AUTHENTICATE mech [SP initial-response]."""
    mech, pos = _upper_atom(buf, _sp(buf, pos))
    initial: Optional[bytes] = None
    if not at_end(buf, pos):
        # initial-response = base64 / "=" (RFC 4959 section 7).
        initial, pos = parse_atom(buf, _sp(buf, pos))
        if initial != b"=" and not _BASE64.match(initial):
            raise NotParseable("Invalid base64 initial response", pos)
    parse_end(buf, pos)
    return Authenticate(tag, mech, initial)


def parse_login(tag: str, buf: bytes, pos: int, ctx: Context) -> Command:
    """RFC 3501 6.2.3: LOGIN SP userid SP password (both astrings)."""
    user, pos = parse_astring(buf, _sp(buf, pos))
    password, pos = parse_astring(buf, _sp(buf, pos))
    parse_end(buf, pos)
    return Login(tag, user, password)


def parse_id(tag: str, buf: bytes, pos: int, ctx: Context) -> Command:
    """RFC 2971: ID SP ("(" string SP nstring *(...) ")" / NIL)."""
    pos = _sp(buf, pos)
    if buf[pos:pos + 3].upper() == b"NIL":
        parse_end(buf, pos + 3)
        return Id(tag, None)

    def pair(b: bytes, p: int) -> tuple[tuple[bytes, Optional[bytes]], int]:
        key, p = parse_string(b, p)
        value, p = parse_nstring(b, _sp(b, p))
        return (key, value), p

    # Some clients send "()" although the grammar wants NIL; accept it.
    pairs, pos = parse_paren_list(buf, pos, pair)
    parse_end(buf, pos)
    return Id(tag, tuple(pairs))


def parse_enable(tag: str, buf: bytes, pos: int, ctx: Context) -> Command:
    """RFC 5161: ENABLE 1*(SP capability)."""
    caps: list[str] = []
    while not at_end(buf, pos) or not caps:
        cap, pos = _upper_atom(buf, _sp(buf, pos))
        caps.append(cap)
    parse_end(buf, pos)
    return Enable(tag, tuple(caps))


def parse_compress(tag: str, buf: bytes, pos: int, ctx: Context) -> Command:
    """RFC 4978 section 3: COMPRESS SP algorithm (an atom)."""
    mech, pos = _upper_atom(buf, _sp(buf, pos))
    parse_end(buf, pos)
    return Compress(tag, mech)


# --------------------------------------------------------------------------
# Authenticated state (RFC 3501 section 6.3)


def parse_select(tag: str, buf: bytes, pos: int, ctx: Context,
                 readonly: bool = False) -> Command:
    """
    RFC 3501 6.3.1/6.3.2: SELECT/EXAMINE mailbox, with RFC 4466
    C{[SP "(" select-param *(SP select-param) ")"]} where
    C{select-param = name [SP value]} (CONDSTORE, QRESYNC (...)).
    """
    mailbox, pos = parse_mailbox(buf, _sp(buf, pos))
    params: list[tuple[str, object]] = []
    if not at_end(buf, pos):
        pos = _sp(buf, pos)

        def param(b: bytes, p: int) -> tuple[tuple[str, object], int]:
            name, p = _upper_atom(b, p)
            value: object = None
            if b[p:p + 1] == b" ":
                value, p = parse_raw_value(b, p + 1, ctx.max_depth)
            return (name, value), p

        items, pos = parse_paren_list(buf, pos, param)
        params.extend(items)
    parse_end(buf, pos)
    return Select(tag, mailbox, readonly, tuple(params))


def parse_examine(tag: str, buf: bytes, pos: int, ctx: Context) -> Command:
    """RFC 3501 6.3.2: EXAMINE is a read-only SELECT."""
    return parse_select(tag, buf, pos, ctx, readonly=True)


def _one_mailbox(cls: type[Command]) -> CommandParser:
    """CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE: SP mailbox."""
    def parse(tag: str, buf: bytes, pos: int, ctx: Context) -> Command:
        mailbox, pos = parse_mailbox(buf, _sp(buf, pos))
        parse_end(buf, pos)
        return cls(tag, mailbox)  # type: ignore[call-arg]
    parse.__doc__ = "%s SP mailbox." % cls.name
    return parse


def parse_rename(tag: str, buf: bytes, pos: int, ctx: Context) -> Command:
    """RFC 3501 6.3.5: RENAME SP mailbox SP mailbox."""
    old, pos = parse_mailbox(buf, _sp(buf, pos))
    new, pos = parse_mailbox(buf, _sp(buf, pos))
    parse_end(buf, pos)
    return Rename(tag, old, new)


def _list_like(cls: type[Command]) -> CommandParser:
    """
    RFC 3501 6.3.9: LSUB SP mailbox SP list-mailbox.  (LIST, with RFC 5258
    LIST-EXTENDED, is parsed by L{imapd.parser.listext}.)  The extended
    syntax is refused here with a precise reason.
    """
    def parse(tag: str, buf: bytes, pos: int, ctx: Context) -> Command:
        pos = _sp(buf, pos)
        if buf[pos:pos + 1] == b"(":
            raise NotParseable("LIST selection options not supported", pos)
        reference, pos = parse_mailbox(buf, pos)
        pos = _sp(buf, pos)
        if buf[pos:pos + 1] == b"(":
            raise NotParseable("Multiple LIST patterns not supported", pos)
        pattern, pos = parse_list_mailbox(buf, pos)
        if buf[pos:pos + 1] == b" ":
            raise NotParseable("LIST return options not supported", pos)
        parse_end(buf, pos)
        return cls(tag, reference, pattern)  # type: ignore[call-arg]
    parse.__doc__ = _list_like.__doc__
    return parse


# RFC 3501 6.3.10 items, plus RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE,
# RFC 9051 DELETED, RFC 9208 DELETED-STORAGE, RFC 7889 APPENDLIMIT and
# RFC 8474 MAILBOXID: the handler answers the ones it advertises and
# refuses the others.
STATUS_ITEMS = frozenset({
    "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
    "HIGHESTMODSEQ", "SIZE", "DELETED", "DELETED-STORAGE", "APPENDLIMIT", "MAILBOXID",
})


def parse_status(tag: str, buf: bytes, pos: int, ctx: Context) -> Command:
    """RFC 3501 6.3.10: STATUS SP mailbox SP "(" status-att *(SP ...) ")"."""
    mailbox, pos = parse_mailbox(buf, _sp(buf, pos))
    pos = _sp(buf, pos)

    def item(b: bytes, p: int) -> tuple[str, int]:
        name, end = _upper_atom(b, p)
        if name not in STATUS_ITEMS:
            raise NotParseable("Unknown STATUS item %s" % name[:32], p)
        return name, end

    items, pos = parse_paren_list(buf, pos, item, empty=False)
    parse_end(buf, pos)
    return Status(tag, mailbox, tuple(items))


def parse_append(tag: str, buf: bytes, pos: int, ctx: Context) -> Command:
    """
    RFC 3501 6.3.11 with RFC 3502 MULTIAPPEND, RFC 3516 literal8 and
    RFC 4469 CATENATE:
    APPEND SP mailbox 1*(SP [flag-list SP] [date-time SP] append-data),
    append-data = literal / literal8 / "CATENATE" SP "(" cat-part ... ")".
    """
    mailbox, pos = parse_mailbox(buf, _sp(buf, pos))
    messages: list[AppendMessage] = []
    while not messages or not at_end(buf, pos):
        pos = _sp(buf, pos)
        flags: tuple[str, ...] = ()
        date = None
        if buf[pos:pos + 1] == b"(":
            flags, pos = parse_flag_list(buf, pos)
            pos = _sp(buf, pos)
        if buf[pos:pos + 1] == b'"':
            date, pos = parse_date_time(buf, pos)
            pos = _sp(buf, pos)
        if buf[pos:pos + 9].upper() == b"CATENATE ":
            def cat_part(b: bytes, p: int) -> tuple[CatenatePart, int]:
                part, p = _cat_part(b, p)
                if part.url is not None and ctx.urls is not None:
                    ctx.urls.append(part.url)
                return part, p
            parts, pos = parse_paren_list(buf, pos + 9, cat_part, empty=False)
            messages.append(AppendMessage(flags, date, catenate=tuple(parts),
                                          binary=any(p.binary for p in parts)))
            continue
        if buf[pos:pos + 1] not in (b"{", b"~"):
            raise NotParseable(
                "Expected message literal, found %s" % describe(buf, pos),
                pos)
        binary = buf[pos:pos + 1] == b"~"
        data, pos = parse_literal(buf, pos, binary=True)
        messages.append(AppendMessage(flags, date, data, binary=binary))
    parse_end(buf, pos)
    return Append(tag, mailbox, tuple(messages))


def _cat_part(buf: bytes, pos: int) -> tuple[CatenatePart, int]:
    """
    RFC 4469 section 5: C{cat-part = "TEXT" SP literal / "URL" SP astring}.
    A TEXT literal may also be a literal8 (RFC 3516 lets APPEND carry
    binary data; Dovecot accepts it too).
    """
    word = buf[pos:pos + 5].upper()
    if word == b"TEXT ":
        pos += 5
        if buf[pos:pos + 1] not in (b"{", b"~"):
            raise NotParseable(
                "Expected TEXT literal, found %s" % describe(buf, pos), pos)
        binary = buf[pos:pos + 1] == b"~"
        data, pos = parse_literal(buf, pos, binary=True)
        return CatenatePart(text=data, binary=binary), pos
    if buf[pos:pos + 4].upper() == b"URL ":
        url, pos = parse_astring(buf, pos + 4)
        return CatenatePart(url=url), pos
    raise NotParseable(
        "Expected TEXT or URL, found %s" % describe(buf, pos), pos)


# --------------------------------------------------------------------------
# Selected state (RFC 3501 section 6.4)


def parse_expunge(tag: str, buf: bytes, pos: int, ctx: Context) -> Command:
    """RFC 3501 6.4.3: EXPUNGE takes no arguments."""
    parse_end(buf, pos)
    return Expunge(tag)


def parse_uid_expunge(tag: str, buf: bytes, pos: int,
                      ctx: Context) -> Command:
    """RFC 4315 section 2.1: UID EXPUNGE SP sequence-set."""
    uids, pos = parse_sequence_set(buf, _sp(buf, pos))
    parse_end(buf, pos)
    return Expunge(tag, uids)


def parse_search(tag: str, buf: bytes, pos: int, ctx: Context,
                 uid: bool = False) -> Command:
    """
    RFC 3501 6.4.4: SEARCH [SP "CHARSET" SP astring] 1*(SP search-key),
    with RFC 4731's C{[SP "RETURN" SP "(" [options] ")"]} first (the
    options of L{imapd.parser.context}, RFC 5267 PARTIAL and UPDATE too).
    An empty RETURN list means RETURN (ALL) (RFC 4731 section 3.1).
    """
    pos = _sp(buf, pos)
    ret = None
    charset: Optional[str] = None
    if buf[pos:pos + 7].upper() == b"RETURN ":
        ret, pos = parse_return_options(buf, pos + 7)
        pos = _sp(buf, pos)
    if buf[pos:pos + 8].upper() == b"CHARSET ":
        value, pos = parse_astring(buf, pos + 8)
        try:
            charset = value.decode("ascii")
        except UnicodeDecodeError:
            raise NotParseable("Invalid charset name", pos) from None
        pos = _sp(buf, pos)
    keys, pos = parse_search_keys(buf, pos, ctx.max_depth)
    parse_end(buf, pos)
    if ret is None:
        return Search(tag, charset, SearchKey("AND", children=keys), uid)
    return Search(tag, charset, SearchKey("AND", children=keys), uid,
                  ret.names, ret.partial, ret.update_atts)


def parse_fetch(tag: str, buf: bytes, pos: int, ctx: Context,
                uid: bool = False) -> Command:
    """
    RFC 3501 6.4.5: FETCH SP sequence-set SP (macro / att / "(" atts ")"),
    with RFC 7162 C{[SP "(" "CHANGEDSINCE" SP mod-sequence-value ")"]}.
    """
    seqset, pos = parse_sequence_set(buf, _sp(buf, pos))
    attrs, pos = parse_fetch_atts(buf, _sp(buf, pos))
    changedsince: Optional[int] = None
    vanished = False
    if not at_end(buf, pos):
        # RFC 7162: fetch-modifier list, "(" fetch-modifier *(SP ...) ")"
        # with CHANGEDSINCE n (section 3.1.4.1) and VANISHED (3.2.6).
        pos = _sp(buf, pos)
        if buf[pos:pos + 1] != b"(":
            raise NotParseable("Unknown FETCH modifier", pos)
        pos += 1
        while True:
            word = buf[pos:pos + 13].upper()
            if word == b"CHANGEDSINCE " and changedsince is None:
                changedsince, pos = parse_modseq(buf, pos + 13)
            elif word[:8] == b"VANISHED" and not vanished and buf[pos + 8:pos + 9] in (b" ", b")"):
                vanished = True
                pos += 8
            else:
                raise NotParseable("Unknown FETCH modifier", pos)
            if buf[pos:pos + 1] == b")":
                pos += 1
                break
            if buf[pos:pos + 1] != b" ":
                raise NotParseable("Expected ')', found %s" % describe(buf, pos), pos)
            pos += 1
        if vanished and changedsince is None:
            # RFC 7162 section 3.2.6: VANISHED needs CHANGEDSINCE.
            raise NotParseable("VANISHED requires CHANGEDSINCE", pos)
    parse_end(buf, pos)
    return Fetch(tag, seqset, attrs, uid, changedsince, vanished)


def parse_store(tag: str, buf: bytes, pos: int, ctx: Context,
                uid: bool = False) -> Command:
    """
    RFC 3501 6.4.6: STORE SP sequence-set [SP "(UNCHANGEDSINCE" SP n ")"]
    SP ["+"/"-"] "FLAGS" [".SILENT"] SP (flag-list / flag *(SP flag)).
    """
    seqset, pos = parse_sequence_set(buf, _sp(buf, pos))
    pos = _sp(buf, pos)
    unchangedsince: Optional[int] = None
    if buf[pos:pos + 1] == b"(":
        # RFC 7162 section 3.1.3 store-modifier.
        if buf[pos:pos + 16].upper() != b"(UNCHANGEDSINCE ":
            raise NotParseable("Unknown STORE modifier", pos)
        unchangedsince, pos = parse_modseq(buf, pos + 16, zero=True)
        if buf[pos:pos + 1] != b")":
            raise NotParseable(
                "Expected ')', found %s" % describe(buf, pos), pos)
        pos = _sp(buf, pos + 1)
    mode = ""
    if buf[pos:pos + 1] in (b"+", b"-"):
        mode = chr(buf[pos])
        pos += 1
    item, pos = parse_atom(buf, pos)
    item = item.upper()
    if item not in (b"FLAGS", b"FLAGS.SILENT"):
        raise NotParseable("Invalid STORE item", pos)
    pos = _sp(buf, pos)
    if buf[pos:pos + 1] == b"(":
        flags, pos = parse_flag_list(buf, pos)
    else:
        flag_list = []
        while True:
            flag, pos = parse_flag(buf, pos)
            flag_list.append(flag)
            if buf[pos:pos + 1] != b" ":
                break
            pos += 1
        flags = tuple(flag_list)
    parse_end(buf, pos)
    action = StoreAction(mode, item == b"FLAGS.SILENT", flags, unchangedsince)
    return Store(tag, seqset, action, uid)


def _copy_like(cls: type[Command]) -> Callable[..., Command]:
    """RFC 3501 6.4.7 COPY / RFC 6851 MOVE: SP sequence-set SP mailbox."""
    def parse(tag: str, buf: bytes, pos: int, ctx: Context,
              uid: bool = False) -> Command:
        seqset, pos = parse_sequence_set(buf, _sp(buf, pos))
        mailbox, pos = parse_mailbox(buf, _sp(buf, pos))
        parse_end(buf, pos)
        return cls(tag, seqset, mailbox, uid)  # type: ignore[call-arg]
    parse.__doc__ = _copy_like.__doc__
    return parse


parse_copy = _copy_like(Copy)
parse_move = _copy_like(Move)


def _uid(fn: Callable[..., Command]) -> CommandParser:
    def parse(tag: str, buf: bytes, pos: int, ctx: Context) -> Command:
        return fn(tag, buf, pos, ctx, uid=True)
    parse.__doc__ = "UID variant of %s (RFC 3501 6.4.8)." % fn.__name__
    return parse


# --------------------------------------------------------------------------
# The tables


COMMANDS: dict[bytes, CommandParser] = {
    b"CAPABILITY": _no_args(Capability),
    b"NOOP": _no_args(Noop),
    b"LOGOUT": _no_args(Logout),
    b"STARTTLS": _no_args(StartTLS),
    b"AUTHENTICATE": parse_authenticate,
    b"LOGIN": parse_login,
    b"ID": parse_id,
    b"ENABLE": parse_enable,
    b"SELECT": parse_select,
    b"EXAMINE": parse_examine,
    b"CREATE": parse_create,    # RFC 3501 + RFC 6154 USE
    b"DELETE": _one_mailbox(Delete),
    b"RENAME": parse_rename,
    b"SUBSCRIBE": _one_mailbox(Subscribe),
    b"UNSUBSCRIBE": _one_mailbox(Unsubscribe),
    b"LIST": parse_list,        # RFC 3501 + RFC 5258/5819/6154
    b"LSUB": _list_like(Lsub),
    b"STATUS": parse_status,
    b"APPEND": parse_append,
    b"NAMESPACE": _no_args(Namespace),
    b"IDLE": _no_args(Idle),
    b"CHECK": _no_args(Check),
    b"CLOSE": _no_args(Close),
    b"UNSELECT": _no_args(Unselect),
    b"EXPUNGE": parse_expunge,
    b"SEARCH": parse_search,
    b"FETCH": parse_fetch,
    b"STORE": parse_store,
    b"COPY": parse_copy,
    b"MOVE": parse_move,
    b"SORT": parse_sort,        # RFC 5256
    b"THREAD": parse_thread,    # RFC 5256
    b"COMPRESS": parse_compress,  # RFC 4978
    b"GETQUOTA": parse_getquota,          # RFC 9208
    b"GETQUOTAROOT": parse_getquotaroot,  # RFC 9208
    b"SETQUOTA": parse_setquota,          # RFC 9208
    b"GENURLAUTH": parse_genurlauth,      # RFC 4467
    b"RESETKEY": parse_resetkey,          # RFC 4467
    b"URLFETCH": parse_urlfetch,          # RFC 4467, RFC 5524
    b"CANCELUPDATE": parse_cancelupdate,  # RFC 5267 section 4.3.5
    b"NOTIFY": parse_notify,              # RFC 5465
}

#: RFC 3501 6.4.8 UID commands (plus RFC 4315 UID EXPUNGE, RFC 6851 UID MOVE).
UID_COMMANDS: dict[bytes, CommandParser] = {
    b"FETCH": _uid(parse_fetch),
    b"STORE": _uid(parse_store),
    b"COPY": _uid(parse_copy),
    b"MOVE": _uid(parse_move),
    b"SEARCH": _uid(parse_search),
    b"EXPUNGE": parse_uid_expunge,
    b"SORT": parse_uid_sort,        # RFC 5256
    b"THREAD": parse_uid_thread,    # RFC 5256
}

_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _command_name(buf: bytes, pos: int) -> tuple[bytes, int]:
    end = pos
    while end < len(buf) and buf[end] in _NAME_CHARS:
        end += 1
    if end == pos:
        raise NotParseable("Missing command", pos)
    if end - pos > 32 or not (at_end(buf, end) or buf[end:end + 1] == b" "):
        raise NotParseable("Invalid command name", pos)
    return buf[pos:end].upper(), end


def parse_command_args(tag: str, buf: bytes, pos: int,
                       ctx: Context) -> Command:
    """
    Parse everything after the tag's SP: the command name, then its
    arguments by the table.  Command names are case-insensitive.
    """
    name, pos = _command_name(buf, pos)
    table = COMMANDS
    if name == b"UID":
        pos = _sp(buf, pos)
        name, pos = _command_name(buf, pos)
        table = UID_COMMANDS
        if name not in table:
            raise NotParseable("Unknown command UID %s" % name.decode(), pos)
    fn = table.get(name)
    if fn is None:
        raise NotParseable("Unknown command %s" % name.decode(), pos)
    return fn(tag, buf, pos, ctx)
