# -*- test-case-name: tests.imapd.test_dispatch -*-
"""
The one command table: name -> L{CommandSpec} (handler, allowed states,
flags).  The dispatcher in L{imapd.protocol} checks the state and applies
the flags; nothing else decides which handler runs.  UID variants are keys
of their own (C{"UID FETCH"}) and share their plain command's handler, the
way Dovecot's C{imap-commands.c} and Mox's C{commands} map do.

Flags (after Dovecot's C{COMMAND_FLAG_*}):
 - C{uses_seqs}: the command names messages by sequence number, so no
   EXPUNGE may be sent while answering it (RFC 3501 section 7.4.1);
 - C{sync}: re-sync the selected mailbox with the store afterwards and
   report changes made elsewhere;
 - C{trycreate}: a missing target mailbox is C{NO [TRYCREATE]}
   (RFC 3501 sections 6.3.11 and 6.4.7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Optional

from imapd.commands import any as any_
from imapd.commands import append, auth, copymove, fetch, idle, mailboxes, search, select, store
from imapd.commands import sort, thread
from imapd.commands import compress, quota
from imapd.commands import urlauth
from imapd.commands import context, notify
from imapd.parser.types import Command

__all__ = ["CommandSpec", "COMMANDS", "lookup"]

NONAUTH = frozenset({"nonauth"})
AUTH = frozenset({"auth", "selected"})
SELECTED = frozenset({"selected"})
ANY = NONAUTH | AUTH


@dataclass(frozen=True)
class CommandSpec:
    handler: Callable[..., Awaitable[Optional[tuple[Optional[str], str]]]]
    states: frozenset[str]
    uses_seqs: bool = False
    sync: bool = True
    trycreate: bool = False


COMMANDS: dict[str, CommandSpec] = {
    # RFC 3501 6.1: any state
    "CAPABILITY": CommandSpec(any_.handle_capability, ANY),
    "NOOP": CommandSpec(any_.handle_noop, ANY),
    "LOGOUT": CommandSpec(any_.handle_logout, ANY, sync=False),
    "ID": CommandSpec(any_.handle_id, ANY),  # RFC 2971
    # RFC 3501 6.2: not authenticated
    "STARTTLS": CommandSpec(auth.handle_starttls, NONAUTH),
    "LOGIN": CommandSpec(auth.handle_login, NONAUTH),
    "AUTHENTICATE": CommandSpec(auth.handle_authenticate, NONAUTH),
    # RFC 3501 6.3: authenticated
    "ENABLE": CommandSpec(any_.handle_enable, AUTH),  # RFC 5161
    "SELECT": CommandSpec(select.handle_select, AUTH, sync=False),
    "EXAMINE": CommandSpec(select.handle_select, AUTH, sync=False),
    "CREATE": CommandSpec(mailboxes.handle_create, AUTH),
    "DELETE": CommandSpec(mailboxes.handle_delete, AUTH),
    "RENAME": CommandSpec(mailboxes.handle_rename, AUTH),
    "SUBSCRIBE": CommandSpec(mailboxes.handle_subscribe, AUTH),
    "UNSUBSCRIBE": CommandSpec(mailboxes.handle_unsubscribe, AUTH),
    "LIST": CommandSpec(mailboxes.handle_list, AUTH),
    "LSUB": CommandSpec(mailboxes.handle_lsub, AUTH),
    "STATUS": CommandSpec(mailboxes.handle_status, AUTH),
    "NAMESPACE": CommandSpec(mailboxes.handle_namespace, AUTH),  # RFC 2342
    "APPEND": CommandSpec(append.handle_append, AUTH, trycreate=True),
    "IDLE": CommandSpec(idle.handle_idle, AUTH),  # RFC 2177
    "COMPRESS": CommandSpec(compress.handle_compress, AUTH, sync=False),  # RFC 4978
    "GETQUOTA": CommandSpec(quota.handle_getquota, AUTH),  # RFC 9208
    "GETQUOTAROOT": CommandSpec(quota.handle_getquotaroot, AUTH),  # RFC 9208
    "SETQUOTA": CommandSpec(quota.handle_setquota, AUTH),  # RFC 9208
    "GENURLAUTH": CommandSpec(urlauth.handle_genurlauth, AUTH),  # RFC 4467
    "RESETKEY": CommandSpec(urlauth.handle_resetkey, AUTH),  # RFC 4467
    "URLFETCH": CommandSpec(urlauth.handle_urlfetch, AUTH),  # RFC 4467, RFC 5524
    # RFC 3501 6.4: selected
    "CHECK": CommandSpec(select.handle_check, SELECTED),
    "CLOSE": CommandSpec(select.handle_close, SELECTED, sync=False),
    "UNSELECT": CommandSpec(select.handle_unselect, SELECTED, sync=False),  # RFC 3691
    "EXPUNGE": CommandSpec(select.handle_expunge, SELECTED),
    "UID EXPUNGE": CommandSpec(select.handle_expunge, SELECTED),  # RFC 4315
    "SEARCH": CommandSpec(search.handle_search, SELECTED, uses_seqs=True),
    "UID SEARCH": CommandSpec(search.handle_search, SELECTED),
    "FETCH": CommandSpec(fetch.handle_fetch, SELECTED, uses_seqs=True),
    "UID FETCH": CommandSpec(fetch.handle_fetch, SELECTED),
    "STORE": CommandSpec(store.handle_store, SELECTED, uses_seqs=True),
    "UID STORE": CommandSpec(store.handle_store, SELECTED),
    "COPY": CommandSpec(copymove.handle_copy, SELECTED, uses_seqs=True, trycreate=True),
    "UID COPY": CommandSpec(copymove.handle_copy, SELECTED, trycreate=True),
    "MOVE": CommandSpec(copymove.handle_move, SELECTED, uses_seqs=True, trycreate=True),  # RFC 6851
    "UID MOVE": CommandSpec(copymove.handle_move, SELECTED, trycreate=True),
    "SORT": CommandSpec(sort.handle_sort, SELECTED, uses_seqs=True),  # RFC 5256
    "UID SORT": CommandSpec(sort.handle_sort, SELECTED),
    "THREAD": CommandSpec(thread.handle_thread, SELECTED, uses_seqs=True),  # RFC 5256
    "UID THREAD": CommandSpec(thread.handle_thread, SELECTED),
    "CANCELUPDATE": CommandSpec(context.handle_cancelupdate, SELECTED),  # RFC 5267
    "NOTIFY": CommandSpec(notify.handle_notify, AUTH),  # RFC 5465
    # The server's own NOTIFY re-check (never parsed: not a command name).
    "NOTIFY POLL": CommandSpec(notify.handle_poll, AUTH, sync=False),
}


def command_key(cmd: Command) -> str:
    """The table key for a parsed command (C{"UID FETCH"}, C{"EXAMINE"})."""
    name = cmd.name
    if name == "SELECT" and getattr(cmd, "readonly", False):
        return "EXAMINE"
    if name == "EXPUNGE" and getattr(cmd, "uids", None) is not None:
        return "UID EXPUNGE"
    if getattr(cmd, "uid", False):
        return "UID " + name
    return name


def lookup(cmd: Command) -> tuple[str, Optional[CommandSpec]]:
    key = command_key(cmd)
    return key, COMMANDS.get(key)
