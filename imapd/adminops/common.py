# -*- test-case-name: tests.imapd.adminops.test_common -*-
"""
What every C{imapd-admin} area of L{imapd.adminops} shares: the exit
statuses, the C{-u}/C{-A} and C{--json} arguments, the site (the
daemon's own authenticator, user database and mail realm, built from the
daemon's configuration) and a user's account opened exactly as a login
opens it.

Exit statuses (the module docstring of L{imapd.admin} lists them too):

    0   done
    1   not found: no such user, mailbox, message or session
    2   error: bad usage (argparse), a refused change, a store or
        system error; the one line on standard error says which
    78  the configuration file cannot be used (EX_CONFIG, as
        C{imapd-deliver} says it)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pwd
from typing import Callable, Iterator, Optional

__all__ = ["EX_OK", "EX_NOTFOUND", "EX_ERROR", "Failed", "NotFound", "Site", "add_command",
           "emit", "pairs", "run_per_user", "as_user", "log_lines"]

EX_OK = 0
EX_NOTFOUND = 1
EX_ERROR = 2


class Failed(Exception):
    """The command could not be done; C{str()} is the one line to print."""

    status = EX_ERROR


class NotFound(Failed):
    """What the command names does not exist."""

    status = EX_NOTFOUND


class NoStore(NotFound):
    """The user has no mail store yet: never logged in, nothing delivered."""


def _inline(f, *args):
    # The daemon runs blocking auth calls in threads; the admin command
    # is one blocking call anyway.
    return f(*args)


def add_command(commands, name: str, run: Callable, help_: str, examples: str,
                users: Optional[str] = None, json_output: bool = True):
    """
    One sub-command with C{--help} examples and the common arguments.

    @param run: C{run(site_or_config, args, out, err)}; see L{_dispatch}.
    @param examples: the epilog, one example a line.
    @param users: None for no user argument, C{"one"} for C{-u USER},
        C{"many"} for C{-u USER} or C{-A}, C{"filter"} for either or
        neither.
    """
    p = commands.add_parser(name, help=help_, description=help_[:1].upper() + help_[1:] + ".",
                            epilog="examples:\n" + examples,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    if users is not None:
        group = p.add_mutually_exclusive_group(required=users != "filter")
        group.add_argument("-u", "--user", metavar="USER", help="the user")
        if users in ("many", "filter"):
            group.add_argument("-A", "--all-users", action="store_true",
                               help="every user the user database can list")
    if json_output:
        p.add_argument("--json", action="store_true", help="JSON output for scripts")
    p.set_defaults(run=lambda config, args, out, err: _dispatch(run, config, args, out, err))
    return p


def _dispatch(run, config, args, out, err) -> int:
    from conf import ConfigError
    from imapd.errors import IMAPError
    from storage.errors import StoreError

    try:
        return run(config, args, out, err) or EX_OK
    except Failed as e:
        print(f"imapd-admin: {e}", file=err)
        return e.status
    except ConfigError as e:
        from imapd.admin import EX_CONFIG

        print(f"imapd-admin: {e}", file=err)
        return EX_CONFIG
    except (StoreError, OSError) as e:
        print(f"imapd-admin: {_describe(e)}", file=err)
        return EX_ERROR
    except IMAPError as e:  # what a session would answer NO/BAD with
        print(f"imapd-admin: {e.text}", file=err)
        return EX_ERROR


def _describe(e: Exception) -> str:
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    return str(e) or type(e).__name__


def emit(out, args, rows: list, text: Callable[[dict], str]) -> None:
    """Print C{rows} (dicts) as one JSON array with C{--json}, else one line each."""
    if getattr(args, "json", False):
        json.dump(rows, out, ensure_ascii=False)
        out.write("\n")
        return
    for row in rows:
        print(text(row), file=out)


def pairs(row: dict, keys) -> str:
    """C{key=value} text for the C{keys} of C{row}."""
    return " ".join(f"{k}={row[k]}" for k in keys)


@contextlib.contextmanager
def as_user(record):
    """
    Work as a system user (the uid its mail worker runs as, DESIGN.md
    "Processes") when run as root, so that files the store creates belong
    to the user and the user's permissions apply; the effective ids only,
    given back afterwards.  Virtual users (no uid) and non-root callers
    work as themselves.
    """
    if record.uid is None or os.geteuid() != 0 or record.uid == 0:
        yield
        return
    gid = record.gid if record.gid is not None else record.uid
    groups = os.getgroups()
    try:
        try:
            os.setgroups(os.getgrouplist(pwd.getpwuid(record.uid).pw_name, gid))
        except KeyError:
            os.setgroups([gid])
        os.setegid(gid)
        os.seteuid(record.uid)
    except OSError as e:
        _restore(groups)
        raise Failed(f"cannot work as {record.name!r} (uid {record.uid}): {e.strerror}") from None
    try:
        yield
    finally:
        _restore(groups)


def _restore(groups) -> None:
    os.seteuid(0)
    os.setegid(0)
    os.setgroups(groups)


class Site:
    """
    The daemon's view of users and mail, built from its configuration as
    the daemon builds it: L{imapd.defaults.prepare_delivery} (the
    passwd-file, mail location and index directory, the shared-storage
    and lock decisions, nothing generated), L{imapd.auth.build_authenticator}
    (passwd-file or PAM, the user database, C{first_valid_uid}) and the
    login's L{imapd.account.MailRealm}.
    """

    def __init__(self, config) -> None:
        from imapd.account import MailRealm
        from imapd.auth import build_authenticator
        from imapd.defaults import prepare_delivery

        self.config = config
        try:
            effective = prepare_delivery(config)
        except OSError as e:
            raise Failed(f"{_describe(e)} (option 'mail.index_dir')") from None
        if config.auth.pam and not config.auth.passwd_file:
            # prepare_delivery names data_dir's passwd-file; with PAM and
            # none configured the daemon has none (imapd.defaults.prepare).
            effective = dataclasses.replace(effective, passwd_file="")
        self.effective = effective
        self.authenticator = build_authenticator(config, effective, runner=_inline)

        def home_for(user):
            record = self.authenticator.user(user)
            return record.home if record is not None else None

        self.realm = MailRealm(effective.mail_location, home_for, effective.index_dir,
                               lookup=self.authenticator.user)

    def lookup(self, user: str):
        """The user's L{UserRecord}; L{NotFound} (with the reason) if it may not log in."""
        record = self.authenticator.userdb.lookup(user)
        if record is None:
            raise NotFound(f"no user {user!r} in the user database")
        why = self.authenticator.refusal(record)
        if why is not None:
            raise NotFound(f"user {user!r} is not served: {why}")
        return record

    def switches_uid(self, user: str) -> bool:
        """Whether working on C{user}'s mail changes the effective uid (L{as_user})."""
        record = self.authenticator.userdb.lookup(user)
        return (record is not None and record.uid is not None and os.geteuid() == 0
                and record.uid != 0)

    def users(self) -> list[str]:
        """
        Every user the user databases can list, in their order: a
        passwd-file's users, and with the system database those with a uid
        of at least C{first_valid_uid}.  A directory (LDAP) is not listed:
        falling back to C{/etc/passwd} would name system accounts.
        """
        from imapd.auth.authenticator import PasswdFileUserDB
        from imapd.auth.passdb import ChainUserDB
        from imapd.auth.userdb import SystemUserDB

        userdb = self.authenticator.userdb
        members = userdb.userdbs if isinstance(userdb, ChainUserDB) else (userdb,)
        names: list[str] = []
        seen: set[str] = set()
        for member in members:
            if isinstance(member, PasswdFileUserDB):
                passwd = member.passwd
                listed = list(passwd.users())
                if not listed and not os.path.exists(passwd.path):
                    raise Failed(f"{passwd.path}: no such file (option 'auth.passwd_file')")
            elif isinstance(member, SystemUserDB):
                first = self.authenticator.first_valid_uid
                listed = [e.pw_name for e in pwd.getpwall()
                          if e.pw_uid >= first and e.pw_uid != 0]
            else:
                raise Failed("-A: an LDAP user database cannot list its users; name them with -u")
            for name in listed:
                if name not in seen:
                    seen.add(name)
                    names.append(name)
        return names

    def location(self, record) -> str:
        """The mail location of C{record} (its C{userdb_mail} or the configured one)."""
        return record.extra.get("userdb_mail") or self.effective.mail_location

    @contextlib.contextmanager
    def account(self, user: str, existing: bool = False) -> Iterator:
        """
        The user's L{imapd.account.Account} as a login opens it (the
        realm's C{requestAvatar}: same location, home, index and store
        code, so the same locks), logged out afterwards.

        @param existing: open only a store that is there (read-only
            commands create no Maildir for a user who never logged in).
        """
        from imapd.account import Account, IAccount

        record = self.lookup(user)
        with as_user(record):
            if existing:
                # The realm's reader of another user's store (URLAUTH):
                # same location and store code, nothing created.
                store = self.realm._open_existing(record.name)
                if store is None:
                    raise NoStore(f"no mail store for {user!r} yet (never logged in, "
                                  f"nothing delivered)")
                account = Account(record.name, store, self.effective.index_dir, record=record)
            else:
                _, account, _ = self.realm.requestAvatar(record, None, IAccount)
            try:
                yield account
            finally:
                account.logout()


#: Users worked on at once by one process with C{-A}.  Their store calls
#: mostly wait on the disk (fsync, NFS round trips) with the GIL released,
#: as they do in the daemon's storage threads; 10,000 tiny Maildirs opened
#: for the first time cost three fsyncs each.
PARALLEL = 8
#: With this many users or more, C{-A} forks one process per core (at most
#: L{MAX_PROCESSES}), each taking a contiguous share of the users: the
#: rest of a store call is Python that one interpreter runs on one core.
FORK_FROM = 200
MAX_PROCESSES = 8


def run_per_user(config, args, err, one: Callable) -> tuple[list, int]:
    """
    Call C{one(site, user)} (returning a list of rows) for C{-u USER} or
    for every user with C{-A}.  With C{-A}, a user that fails is reported
    on C{err} and the others go on; the status is the worst seen.  Users
    are worked on in parallel (L{PARALLEL} threads, in L{FORK_FROM} or
    more users one process per core); the output keeps the user
    database's order.

    @return: all rows (with C{-A} each has a C{user} key first) and the
        exit status.
    """
    site = Site(config)
    if not getattr(args, "all_users", False):
        return one(site, args.user), EX_OK
    users = site.users()
    processes = min(os.cpu_count() or 1, MAX_PROCESSES)
    if len(users) >= FORK_FROM and processes > 1:
        results = _forked(site, users, one, processes)
    else:
        results = _threaded(site, users, one)
    rows, status = [], EX_OK
    for user, (got, message, code) in zip(users, results):
        if message:
            print(f"imapd-admin: {user}: {message}", file=err)
        status = max(status, code)
        rows.extend({"user": user, **row} for row in got)
    return rows, status


def _threaded(site, users: list, one: Callable) -> list:
    """
    L{_attempt} for each user, L{PARALLEL} at a time; a user whose work
    needs another effective uid (L{as_user}) runs alone afterwards, since
    the effective uid is the whole process's.
    """
    from concurrent.futures import ThreadPoolExecutor

    results: list = [None] * len(users)
    alone = [i for i, user in enumerate(users) if site.switches_uid(user)]
    together = sorted(set(range(len(users))) - set(alone))
    with ThreadPoolExecutor(PARALLEL) as pool:
        for i, result in zip(together, pool.map(lambda i: _attempt(site, users[i], one),
                                                together)):
            results[i] = result
    for i in alone:
        results[i] = _attempt(site, users[i], one)
    return results


def _forked(site, users: list, one: Callable, processes: int) -> list:
    """L{_threaded} in C{processes} forked processes, each on a contiguous share."""
    import pickle

    size = -(-len(users) // processes)
    children = []
    for start in range(0, len(users), size):
        share = users[start:start + size]
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its share, pickled into the pipe, then gone
            os.close(read)
            try:
                try:
                    data = pickle.dumps(("ok", _threaded(site, share, one)))
                except BaseException as e:
                    data = pickle.dumps(("error", f"{type(e).__name__}: {e}"))
                with os.fdopen(write, "wb") as f:
                    f.write(data)
            finally:
                os._exit(0)
        os.close(write)
        children.append((pid, read))
    results: list = []
    failed = ""
    for pid, read in children:
        with os.fdopen(read, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        kind, value = pickle.loads(data) if data else ("error", "a worker process died")
        if kind == "ok":
            results.extend(value)
        else:
            failed = value
    if failed:
        raise Failed(f"a process working on a share of the users failed: {failed}")
    return results


def _attempt(site, user: str, one: Callable) -> tuple[list, str, int]:
    """C{one(site, user)}: (rows, what went wrong or "", status)."""
    from storage.errors import StoreError

    try:
        return one(site, user), "", EX_OK
    except NoStore:
        return [], "", EX_OK  # no mailboxes, nothing to say of them
    except Failed as e:
        return [], str(e), e.status
    except (OSError, StoreError) as e:
        return [], _describe(e), EX_ERROR


@contextlib.contextmanager
def log_lines() -> Iterator[list]:
    """
    Collect what the daemon's code logs meanwhile (one formatted line per
    event at level info or above): the reasons it gives the sysadmin,
    e.g. why a login was refused, which C{auth test} prints.
    """
    from twisted.logger import LogLevel, formatEvent, globalLogPublisher

    lines: list[str] = []

    def observer(event) -> None:
        level = event.get("log_level")
        if level is not None and level >= LogLevel.info:
            text = formatEvent(event)
            if text:
                lines.append(text)

    globalLogPublisher.addObserver(observer)
    try:
        yield lines
    finally:
        globalLogPublisher.removeObserver(observer)
