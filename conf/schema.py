# -*- test-case-name: tests.conf.test_config -*-
"""
Every configuration option: its name, type, default and meaning.

The schema is a set of frozen dataclasses, one per TOML table, whose field
metadata carries the documentation and an optional value check.  Top-level
options live in L{ServerSection}; the others in a table named like the
attribute of L{Config} that holds them (C{[tls]}, C{[auth]}, ...).  Option
names in messages are dotted: C{listen}, C{tls.cert}, C{limits.max_line}.

C{conf/imapd.example.toml} documents every option; a test checks that it
names all of them and loads without error.

Paths given in the file are relative to the file's directory; paths given
on the command line or left at their defaults are relative to the working
directory.  An empty path means "derive it from C{data_dir}" (see
L{imapd.defaults}).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from imapd.server import (DEFAULT_SPECIAL_USE, SPECIAL_USE_ATTRIBUTES, SessionLimits)

__all__ = [
    "Config",
    "ServerSection",
    "TLSSection",
    "AuthSection",
    "MailSection",
    "StorageSection",
    "LimitsSection",
    "LogSection",
    "QuotaSection",
    "MailboxesSection",
    "UserdbSection",
    "LdapSection",
    "LmtpSection",
    "ServiceSection",
    "ClusterSection",
    "parse_size",
    "SECTIONS",
    "Spec",
    "option_specs",
    "MAIL_DRIVERS",
    "LOG_LEVELS",
    "PATH",
    "AUTO",
]

#: Marks a str option as a filesystem path (resolved to an absolute path).
PATH = "path"
#: The value of a tri-state option that lets the server decide.
AUTO = "auto"
#: Mail store drivers a mail location may name (Dovecot syntax).
MAIL_DRIVERS = ("maildir", "mbox")
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


def opt(default: Any, doc: str, check: Optional[Callable] = None, kind: str = "",
        convert: Optional[Callable] = None):
    """
    Declare one option.

    @param check: called with the value; raises L{ValueError} whose text
        says what is wrong.
    @param kind: L{PATH} for paths.
    @param convert: turns the TOML value into the stored one (a table into
        a tuple of pairs, "1G" into KiB); raises L{ValueError} whose text
        says what is wrong.  C{default} is given already converted.
    """
    return field(default=default,
                 metadata={"doc": doc, "check": check, "kind": kind, "convert": convert})


def _positive(value) -> None:
    if value <= 0:
        raise ValueError(f"must be greater than 0, not {value!r}")


def _non_negative(value) -> None:
    if value < 0:
        raise ValueError(f"must not be negative, not {value!r}")


def _one_of(*choices: str) -> Callable:
    def check(value) -> None:
        if value not in choices:
            raise ValueError(
                f"must be one of {', '.join(repr(c) for c in choices)}, not {value!r}"
            )

    return check


def _tls_version(value) -> str:
    """
    C{1.3} written as a TOML number means C{"1.3"}: a sysadmin should not
    have to know that TOML tells them apart.
    """
    if isinstance(value, float):
        # repr, not a rounding format: 1.25 must stay wrong, not become "1.2".
        return repr(value)
    if isinstance(value, str):
        return value.strip()
    raise ValueError(f"must be \"1.2\" or \"1.3\", not {value!r}")


#: Other spellings of the log levels (syslog's and Python's names).
_LOG_LEVEL_ALIASES = {"warning": "warn", "err": "error", "crit": "critical", "notice": "info"}


def _log_level(value: str) -> str:
    """C{"warning"}, C{"WARN"} -> C{"warn"} (Twisted's names are the stored ones)."""
    value = value.strip().lower()
    return _LOG_LEVEL_ALIASES.get(value, value)


def _tristate(value) -> None:
    if not isinstance(value, bool) and value != AUTO:
        raise ValueError(f"must be true, false or {AUTO!r}, not {value!r}")


def _lock_methods(value) -> None:
    if value == AUTO:
        return
    names = [n for n in str(value).replace(",", "+").split("+") if n]
    bad = [n for n in names if n not in ("dotlock", "fcntl", "flock")]
    if not names or bad:
        raise ValueError(f"{value!r}: lock methods are dotlock, fcntl and flock joined "
                         f"by '+', or {AUTO!r}")


def _listen(value) -> None:
    if not value:
        raise ValueError("at least one listener is needed")
    from conf.endpoints import check_endpoint

    for description in value:
        check_endpoint(description)


def _networks(value) -> None:
    from imapd.proxyprotocol import parse_networks

    parse_networks(value)


def _mail_location(value) -> None:
    """
    Parse the location as the store will (for a made-up user with a home),
    and make sure a store exists for its driver.
    """
    if value == "":
        return
    driver, sep, rest = value.partition(":")
    if not sep or not rest or "/" in driver or "~" in driver:
        raise ValueError(
            f"{value!r} has no driver: write it as DRIVER:PATH, for example "
            f"'maildir:/srv/mail/%u' (drivers: {', '.join(MAIL_DRIVERS)})"
        )
    from storage.location import LocationError, parse_location
    from storage.registry import STORES

    try:
        location = parse_location(value, "user@example.org", "/home/user")
    except LocationError as e:
        raise ValueError(str(e)) from None
    if location.driver not in STORES:
        raise ValueError(
            f"{value!r}: no store for the driver {location.driver!r} yet "
            f"(available: {', '.join(sorted(STORES))})"
        )
    if not location.root.startswith("/"):
        raise ValueError(f"{value!r}: the mail root must be absolute or start with ~/")


@dataclass(frozen=True)
class ServerSection:
    """Top-level options."""

    listen: tuple[str, ...] = opt(
        ("tcp:1143:interface=127.0.0.1", "tls:1993:interface=127.0.0.1"),
        "Where to accept connections: Twisted server endpoint strings.\n"
        "tcp:PORT[:interface=ADDR] is plain IMAP with STARTTLS;\n"
        "tls:PORT[:interface=ADDR] is implicit TLS (port 993 style) with the\n"
        "certificate of [tls]; ssl:PORT:privateKey=KEY.pem:certKey=CERT.pem is\n"
        "implicit TLS with its own certificate; unix:/path/to/socket also works.\n"
        "No interface means every address.  haproxy: before any of them reads\n"
        "a PROXY protocol header from haproxy_trusted_networks.",
        check=_listen,
    )
    lmtp_listen: tuple[str, ...] = opt(
        (),
        "Where to accept LMTP (RFC 2033) deliveries from the MTA, as endpoint\n"
        "strings like listen: unix:/run/imapd/lmtp, tcp:24:interface=127.0.0.1.\n"
        "LMTP has no authentication: listen only where the MTA alone can\n"
        "connect.  Empty: no LMTP.  See [lmtp].",
        check=lambda value: _plain_listeners(value),
    )
    haproxy_trusted_networks: tuple[str, ...] = opt(
        (),
        "Networks of proxies that send a PROXY protocol header (v1 or v2) on\n"
        "listeners written haproxy:tcp:..., e.g. [\"10.0.0.0/8\", \"127.0.0.1\"].\n"
        "Connections from them must start with the header, whose client\n"
        "address the log and the login limits then use; others connect as usual.\n"
        "Their ID x-originating-ip before login is believed too.",
        check=_networks,
    )
    hostname: str = opt(
        "",
        "The server's name in greetings and in a generated certificate.\n"
        "Empty: this machine's host name.",
    )
    data_dir: str = opt(
        "imapd-data",
        "Where the embedded defaults live: a generated certificate, a passwd-file\n"
        "with a demo user, the mail, the index and the control socket.  Only the\n"
        "parts not configured elsewhere are created, on first start.",
        kind=PATH,
    )


@dataclass(frozen=True)
class TLSSection:
    """C{[tls]}: the certificate for STARTTLS and implicit TLS."""

    enabled: bool = opt(
        True,
        "Offer STARTTLS and allow tls: listeners.  false for a server behind a\n"
        "TLS-terminating proxy only.",
    )
    cert: str = opt(
        "",
        "PEM certificate (followed by its chain).  Empty: DATA_DIR/tls/cert.pem,\n"
        "a self-signed certificate generated on first start.",
        kind=PATH,
    )
    key: str = opt(
        "",
        "PEM private key of cert.  Empty: DATA_DIR/tls/key.pem (only together\n"
        "with an empty cert).",
        kind=PATH,
    )
    min_version: Any = opt(
        "1.2",
        "Oldest TLS version accepted: \"1.2\" or \"1.3\" (a number, 1.3, is\n"
        "read the same).",
        _one_of("1.2", "1.3"),
        convert=_tls_version,
    )


def _passdb(value) -> None:
    from imapd.auth.passdb import PASSDB_DRIVERS

    for name in value:
        if name not in PASSDB_DRIVERS:
            raise ValueError(f"unknown password database {name!r} "
                             f"(known: {', '.join(PASSDB_DRIVERS)})")
    if len(set(value)) != len(value):
        raise ValueError("names a password database twice")


def _ldap_filter(value) -> None:
    from imapd.auth.ldapdb import expand_filter

    expand_filter(value, "user@example.org")
    if not (value.startswith("(") and value.endswith(")")):
        raise ValueError(f"{value!r} is no LDAP filter: write it in parentheses "
                         "(RFC 4515), e.g. \"(&(objectClass=posixAccount)(uid=%u))\"")


def _attr_map(fields: tuple[str, ...]) -> Callable:
    def convert(value):
        from imapd.auth.ldapdb import parse_attr_map

        if not isinstance(value, str):
            raise ValueError(f"must be a string like \"ATTRIBUTE=FIELD, ...\", not {value!r}")
        return parse_attr_map(value, fields)
    return convert


def _ldap_uris(value) -> None:
    for uri in value:
        scheme, sep, rest = uri.partition("://")
        if not sep or scheme.lower() not in ("ldap", "ldaps") or not rest.strip("/"):
            raise ValueError(f"{uri!r} is not an ldap://HOST[:PORT] or ldaps://HOST[:PORT] URI")


@dataclass(frozen=True)
class AuthSection:
    """C{[auth]}: who may log in."""

    passwd_file: str = opt(
        "",
        "Dovecot-style passwd-file: user:{SCHEME}hash:uid:gid:gecos:home:shell:extra\n"
        "(schemes: SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, ARGON2ID, ...).\n"
        "Empty: DATA_DIR/passwd, created with a user 'demo' whose random password\n"
        "is logged once and kept in DATA_DIR/demo-password.",
        kind=PATH,
    )
    allow_plaintext: Any = opt(
        AUTO,
        "Allow LOGIN and AUTHENTICATE PLAIN without TLS: true, false, or \"auto\"\n"
        "(allowed only when every listener is on a loopback address or a UNIX\n"
        "socket).",
        check=_tristate,
    )
    pam: str = opt(
        "",
        "Check passwords with PAM under this service name (a file in /etc/pam.d,\n"
        "e.g. \"imapd\"), instead of the passwd-file.  Reading /etc/shadow through\n"
        "pam_unix needs the master to start as root.  Without a passwd_file the\n"
        "users' uid, gid and home come from the system password database.\n"
        "Empty: no PAM.",
    )
    passdb: tuple[str, ...] = opt(
        (),
        "Password databases, tried in this order until one accepts: \"passwd-file\"\n"
        "(auth.passwd_file), \"pam\" (auth.pam), \"ldap\" (the [ldap] table).  Each\n"
        "one's users come with it (the passwd-file's fields, the system's for PAM,\n"
        "the directory's user_attrs).  A database that cannot answer (directory\n"
        "down) fails the login with NO [UNAVAILABLE] unless a later one accepts.\n"
        "Empty: \"pam\" when auth.pam is set, else \"passwd-file\".",
        check=_passdb,
    )
    cache_size: int = opt(
        0,
        "Authentication cache (Dovecot's auth_cache_size), for every passdb:\n"
        "outcomes of password checks kept, at most this many users.  0: no cache.",
        _non_negative,
    )
    cache_ttl: float = opt(
        3600.0,
        "Seconds a successful check is reused for the same password (Dovecot's\n"
        "auth_cache_ttl); a password changed in the directory is noticed after it.",
        _non_negative,
    )
    cache_negative_ttl: float = opt(
        60.0,
        "Seconds a refused check is reused for the same password (Dovecot's\n"
        "auth_cache_negative_ttl).  0: refusals are not kept.",
        _non_negative,
    )


@dataclass(frozen=True)
class LdapSection:
    """C{[ldap]}: the directory of C{[auth] passdb = ["ldap"]} (Dovecot's names)."""

    uris: tuple[str, ...] = opt(
        (),
        "LDAP servers, tried in order: [\"ldap://ldap1.example.org\",\n"
        "\"ldaps://ldap2.example.org:636\"].  One that fails is logged and skipped for\n"
        "30 seconds while another answers.",
        check=_ldap_uris,
    )
    base: str = opt("", "The DN searches start from, e.g. \"ou=people,dc=example,dc=org\".")
    scope: str = opt("subtree", "Search scope: \"base\", \"onelevel\" or \"subtree\".",
                     _one_of("base", "onelevel", "subtree"))
    bind_dn: str = opt("", "DN to bind as for searches.  Empty: anonymous searches.")
    bind_password: str = opt("", "Password of bind_dn (or use bind_password_file).")
    bind_password_file: str = opt(
        "", "File whose first line is the password of bind_dn (keep it 0600).", kind=PATH)
    auth_bind: bool = opt(
        False,
        "Check passwords by binding as the user's DN (found with pass_filter):\n"
        "the directory verifies them.  false: read the password attribute of\n"
        "pass_attrs and verify its {SCHEME} value here (needs bind_dn allowed to\n"
        "read it).",
    )
    pass_filter: str = opt(
        "(&(objectClass=posixAccount)(uid=%u))",
        "Filter that finds a user at login: %u the user name, %n its part before\n"
        "@, %d the domain; values are escaped (RFC 4515).",
        check=_ldap_filter,
    )
    pass_attrs: Any = opt(
        (("uid", "user"), ("userPassword", "password")),
        "ATTRIBUTE=FIELD pairs read at login, fields user and password (a\n"
        "{SCHEME}hash, or a crypt(3) string without a scheme).",
        convert=_attr_map(("user", "password")),
    )
    user_filter: str = opt(
        "(&(objectClass=posixAccount)(uid=%u))",
        "Filter that finds a user without a password (delivery, URLAUTH).",
        check=_ldap_filter,
    )
    user_attrs: Any = opt(
        (("homeDirectory", "home"), ("uidNumber", "uid"), ("gidNumber", "gid")),
        "ATTRIBUTE=FIELD pairs for the user's fields: home, uid, gid (the mail is\n"
        "opened as that uid: leave them out for virtual users), mail (the mail\n"
        "location, e.g. \"maildir:~/Maildir\"), quota_storage (bytes, or with k, M,\n"
        "G, T), quota_messages, user.",
        convert=_attr_map(("home", "uid", "gid", "mail", "quota_storage",
                           "quota_messages", "user")),
    )
    starttls: bool = opt(False, "Use StartTLS on ldap:// URIs (certificate checked).")
    tls_ca_cert_file: str = opt(
        "", "CA certificates for ldaps:// and starttls.  Empty: the system's.", kind=PATH)
    timeout: float = opt(5.0, "Seconds for a connect and for each answer of the directory.",
                         _positive)
    pool_size: int = opt(4, "Connections kept open per server (and LDAP threads).",
                         _positive)


@dataclass(frozen=True)
class UserdbSection:
    """C{[userdb]}: where a logged-in user's uid, gid and home come from."""

    system: bool = opt(
        False,
        "Take uid, gid and home from the system's password database (getpwnam):\n"
        "system users whose mail is owned by themselves, as UW-IMAP served them.\n"
        "false: the passwd-file's fields (or the server's own uid when empty).",
    )
    first_valid_uid: int = opt(
        1000,
        "Lowest uid a user may have; root and system accounts below it are\n"
        "refused at login, with a log line.",
        _non_negative,
    )


@dataclass(frozen=True)
class ServiceSection:
    """C{[service]}: the processes (master, login processes, mail workers)."""

    single_process: bool = opt(
        False,
        "Serve everything in the twistd process itself (debugging, tests).\n"
        "false: a master supervises login processes and mail workers.",
    )
    login_processes: int = opt(
        0,
        "Login processes (greeting, TLS, LOGIN/AUTHENTICATE); 0: one per core.",
        _non_negative,
    )
    mail_workers: int = opt(
        0,
        "Mail worker processes for users who share the server's uid (virtual\n"
        "users); a user's sessions all go to one of them.  0: one per core.\n"
        "System users (userdb.system, or passwd-file uids) get a worker of\n"
        "their own, running as them.",
        _non_negative,
    )
    login_user: str = opt(
        "nobody",
        "The unprivileged user login processes run as when the master starts\n"
        "as root.",
    )
    login_chroot: str = opt(
        "",
        "Directory login processes chroot into when the master starts as root.\n"
        "Empty: no chroot.",
        kind=PATH,
    )
    mail_user: str = opt(
        "",
        "The user the mail workers of virtual users (users without a uid of\n"
        "their own) run as when the master starts as root, as Dovecot's\n"
        "mail_uid: their mail and index_dir must be this user's.  Empty: the\n"
        "master's uid.",
    )
    mail_privileged_group: str = opt(
        "",
        "Group a mail worker may switch to only while it dotlocks in a spool\n"
        "directory such as a 2775 root:mail /var/mail (Dovecot's setting of the\n"
        "same name).  Empty: none.",
    )
    user_worker_grace: float = opt(
        10.0,
        "Seconds a system user's worker stays after that user's last session.",
        _non_negative,
    )
    control_socket: str = opt(
        "",
        "The daemon's control socket (UNIX, mode 0600 in a 0700 directory), for\n"
        "imapd-admin who and kick.  A systemd unit with RuntimeDirectory=imapd\n"
        "would say \"/run/imapd/control\".  Empty: DATA_DIR/run/control.",
        kind=PATH,
    )


@dataclass(frozen=True)
class MailSection:
    """C{[mail]}: where mail is stored."""

    location: str = opt(
        "",
        "Mail location in Dovecot syntax, DRIVER:PATH[:KEY=VALUE...], with %u\n"
        "(user name), %n, %d and ~ (home from the passwd-file).  Drivers:\n"
        "maildir ('maildir:/srv/mail/%u', 'maildir:~/Maildir') and mbox\n"
        "('mbox:~/mail:INBOX=/var/mail/%u': folders are files under ~/mail,\n"
        "INBOX the spool file; without INBOX=, ~/mail/inbox).  Keys: INBOX=,\n"
        "INDEX= (an index directory of its own), and for mbox READ_LOCKS= and\n"
        "WRITE_LOCKS= (dotlock, fcntl, flock joined by '+').\n"
        "Empty: maildir:DATA_DIR/mail/%u.",
        check=_mail_location,
    )
    index_dir: str = opt(
        "",
        "Per-node index cache on local disk (never on NFS).  It may be deleted at\n"
        "any time; it is rebuilt.  Empty: DATA_DIR/index.",
        kind=PATH,
    )
    nfs_storage: Any = opt(
        AUTO,
        "Mail on a shared filesystem (NFS, SMB, FUSE): flush the client's attribute\n"
        "and directory caches before trusting a listing or a stat, and never call\n"
        "a message gone without a flushed re-check (Dovecot's mail_nfs_storage).\n"
        "Costs a few system calls per sync.  true, false, or \"auto\" (true when\n"
        "the mail root is on nfs, nfs4, cifs/smb3, 9p, ceph, glusterfs, lustre,\n"
        "gpfs, ocfs2, gfs2, afs or any FUSE filesystem, by /proc/self/mountinfo).",
        check=_tristate,
    )
    nfs_index: Any = opt(
        AUTO,
        "The index directory is on a shared filesystem (Dovecot's mail_nfs_index):\n"
        "each node then keeps its index files in a subdirectory named after its\n"
        "host name, so that no two nodes ever open one SQLite file.  true, false,\n"
        "or \"auto\" (true when index_dir is on a shared filesystem, as above).",
        check=_tristate,
    )
    mbox_read_locks: str = opt(
        AUTO,
        "Lock methods an mbox reader takes, joined by '+' (dotlock, fcntl, flock),\n"
        "unless the mail location says READ_LOCKS=.  \"auto\": fcntl (Dovecot's\n"
        "default) on a local filesystem; dotlock+fcntl on a shared one, where fcntl\n"
        "and flock locks may not reach the other nodes (NFS without a lock manager).",
        check=_lock_methods,
    )
    mbox_write_locks: str = opt(
        AUTO,
        "Lock methods an mbox writer takes (see mbox_read_locks), unless the mail\n"
        "location says WRITE_LOCKS=.  \"auto\": dotlock+fcntl.  The dotlock is the\n"
        "one every MDA and MUA honours and the only one safe over NFS.",
        check=_lock_methods,
    )
    index_max_age: float = opt(
        30,
        "Days after which the index of a mailbox nobody opened on this node is\n"
        "removed (it is rebuilt if the mailbox is opened again).  0: never.",
        _non_negative,
    )
    index_max_size: int = opt(
        0,
        "Megabytes the index directory may hold; beyond, the indexes of the\n"
        "least recently used mailboxes are removed.  0: no limit.",
        _non_negative,
    )
    index_sweep_interval: float = opt(
        3600,
        "Seconds between sweeps of the index directory for index_max_age and\n"
        "index_max_size (the first one an interval after start).  0: never sweep.",
        _non_negative,
    )


@dataclass(frozen=True)
class StorageSection:
    """C{[storage]}: blocking disk work."""

    threads: int = opt(
        8,
        "Size of the thread pool for blocking mail store calls.  A hung NFS\n"
        "server ties up threads, not the network loop.",
        _positive,
    )
    threads_per_mailbox: int = opt(
        0,
        "Most pool threads the sessions of one user and mailbox use at once,\n"
        "so that a mailbox on a hung file system stalls only its own sessions.\n"
        "0: a quarter of threads (at least 1).",
        _non_negative,
    )
    stuck_after: float = opt(
        10,
        "Seconds after which a store call counts as stuck: the pool grows by a\n"
        "thread in its place (up to 4 x threads extra) until it returns.",
        _positive,
    )


_LIMIT_DOCS = {
    "idle_timeout_auth": "Seconds of silence before an authenticated session is closed\n"
    "(RFC 3501 asks for at least 30 minutes).",
    "idle_timeout_unauth": "Seconds of silence before a not yet authenticated session is closed.",
    "login_timeout": "Seconds from connect to a successful login, however active the client\n"
    "is; then BYE.  Bounds connections that trickle octets to stay open.",
    "line_timeout": "Seconds a client may take from the first octet of a command line to\n"
    "its end (literal data excluded); then BYE.",
    "max_connections": "Connections open at once, in total; the next one gets\n"
    "\"* BYE [UNAVAILABLE]\" and is closed.",
    "max_connections_per_ip": "Connections open at once from one IP address; the next one gets\n"
    "\"* BYE [UNAVAILABLE]\" and is closed.  Loopback addresses and UNIX\n"
    "sockets are not limited (local webmail, proxies).  Raise it for an office\n"
    "behind one NAT address or a webmail on another host.",
    "max_line": "Longest command line in octets, literals excluded.",
    "max_literal": "Largest literal after login in octets (APPEND size, APPENDLIMIT).",
    "max_literal_unauth": "Largest literal before login in octets.",
    "max_literals_per_command": "Most literals in one command after login (MULTIAPPEND sends one\n"
    "per message); with max_literal it bounds a command's size.",
    "max_literals_unauth": "Most literals in one command before login (LOGIN needs two).",
    "max_bad_commands": "Consecutive BAD commands before the server says BYE.",
    "failed_login_delay": "Seconds before answering a failed login.",
    "max_failed_logins": "Failed logins on one connection before BYE.",
    "max_failed_logins_per_address": "Failed logins from one remote address, over all its\n"
    "connections, before it is refused with BYE until some are forgotten\n"
    "(see failed_login_decay).  0: no limit.",
    "failed_login_decay": "Seconds after which one failed login of an address is forgotten.",
    "idle_poll_interval": "Seconds between mailbox re-syncs of a session in IDLE.",
    "notify_poll_interval": "Seconds between re-checks of the mailboxes a NOTIFY (RFC 5465)\n"
    "session watches, for changes by other processes, nodes or an MDA\n"
    "(changes by sessions of the same process are noticed at once).",
    "max_notify_mailboxes": "Most mailboxes one NOTIFY session may watch besides the selected\n"
    "one; each costs a STATUS read per re-check (more: NOTIFICATIONOVERFLOW).",
    "max_updating_searches": "Most SEARCH/SORT results (RFC 5267 UPDATE) one session has kept up\n"
    "to date at once; each is evaluated again after every change of the\n"
    "mailbox (more: NOUPDATE).",
}


#: Limits where 0 means "no limit"; and limits that must be above 0 although
#: their names do not say so.
_ZERO_DISABLES = frozenset({"max_failed_logins_per_address"})
_POSITIVE_LIMITS = frozenset({"failed_login_decay"})


def _limits_section():
    """
    Mirror L{SessionLimits} field by field, so a limit added to the
    protocol layer is configurable at once.
    """
    fields = []
    for f in dataclasses.fields(SessionLimits):
        doc = _LIMIT_DOCS.get(f.name, f"See imapd.server.SessionLimits.{f.name}.")
        positive = (f.name.startswith(("max_", "idle_")) and f.name not in _ZERO_DISABLES
                    or f.name.endswith("_timeout") or f.name in _POSITIVE_LIMITS)
        check = _positive if positive else _non_negative
        fields.append((f.name, f.type, opt(f.default, doc, check)))
    cls = dataclasses.make_dataclass("LimitsSection", fields, frozen=True)
    cls.__module__ = __name__
    cls.__doc__ = "C{[limits]}: what one client may use (L{SessionLimits})."
    return cls


LimitsSection = _limits_section()


@dataclass(frozen=True)
class LogSection:
    """C{[log]}: logging: how much, and where (L{imapd.logsink})."""

    level: str = opt(
        "info",
        "Least important events logged: debug, info, warn, error, critical\n"
        "(also written warning, err, crit; case does not matter).",
        _one_of(*LOG_LEVELS),
        convert=_log_level,
    )
    target: str = opt(
        "stdout",
        "Where the log goes: \"stdout\" (twistd's choice: standard output with\n"
        "-n, else --logfile or --syslog), \"syslog\" (the local syslog socket,\n"
        "with each line's level as its severity) or \"journal\" (standard output\n"
        "with systemd's <N> level prefixes, for a systemd unit).",
        _one_of("stdout", "syslog", "journal"),
    )
    syslog_socket: str = opt(
        "/dev/log",
        "The syslog socket of target = \"syslog\".",
        kind=PATH,
    )
    syslog_facility: str = opt(
        "mail",
        "The syslog facility of target = \"syslog\": mail, daemon, user,\n"
        "local0 .. local7.",
        _one_of("mail", "daemon", "user", *(f"local{i}" for i in range(8))),
    )


_SIZE_UNITS = {"": 1, "K": 1, "M": 1024, "G": 1024 ** 2, "T": 1024 ** 3}


def parse_size(value) -> int:
    """
    A storage limit in KiB, the unit of RFC 9208 section 5.1: an integer
    (KiB) or a string of digits with an optional binary unit K, M, G or T
    (C{"512M"}, C{"1G"}; a trailing C{B}/C{iB} is allowed).  0 is no limit.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"must not be negative, not {value!r}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a number of KiB or a string like \"1G\", not {value!r}")
    text = value.strip().upper()
    for suffix in ("IB", "B"):
        if text.endswith(suffix) and len(text) > len(suffix) and not text[-len(suffix) - 1].isdigit():
            text = text[: -len(suffix)]
            break
    digits, unit = text, ""
    if text and text[-1] in _SIZE_UNITS:
        digits, unit = text[:-1], text[-1]
    if not digits.isdigit() or len(digits) > 15:
        raise ValueError(f"{value!r} is not a size: write KiB as a number or \"10M\", \"1G\"")
    return int(digits) * _SIZE_UNITS[unit]


def _quota_users(value) -> tuple:
    """
    C{[quota.users]}: user name -> {storage = ..., messages = ...}, kept as
    sorted (user, storage or None, messages or None) triples; None means
    the global default.
    """
    if not isinstance(value, dict):
        raise ValueError(f"must be a table of users, not {value!r}")
    out = []
    for user, limits in sorted(value.items()):
        if not isinstance(limits, dict):
            raise ValueError(f"user {user!r}: must be a table like "
                             f"{{ storage = \"1G\", messages = 10000 }}, not {limits!r}")
        unknown = set(limits) - {"storage", "messages"}
        if unknown:
            raise ValueError(f"user {user!r}: unknown key {sorted(unknown)[0]!r} "
                             "(known: storage, messages)")
        storage = None
        if "storage" in limits:
            try:
                storage = parse_size(limits["storage"])
            except ValueError as e:
                raise ValueError(f"user {user!r}: storage: {e}") from None
        messages = limits.get("messages")
        if messages is not None and (not isinstance(messages, int) or isinstance(messages, bool)
                                     or messages < 0):
            raise ValueError(f"user {user!r}: messages must be a count, not {messages!r}")
        out.append((user, storage, messages))
    return tuple(out)


def _attribute(attr: str) -> str:
    """C{"sent"}, C{"\\Sent"} -> C{"\\Sent"}; anything else is an error."""
    wanted = attr if attr.startswith("\\") else "\\" + attr
    for known in SPECIAL_USE_ATTRIBUTES:
        if known.lower() == wanted.lower():
            return known
    raise ValueError(f"unknown special-use attribute \"{attr}\" "
                     f"(RFC 6154: {', '.join(SPECIAL_USE_ATTRIBUTES)})")


def _special_use(value) -> tuple:
    """C{[mailboxes.special_use]}: mailbox name -> RFC 6154 attribute."""
    if not isinstance(value, dict):
        raise ValueError(f"must be a table of mailbox = attribute, not {value!r}")
    out = []
    seen: set[str] = set()
    for name, attr in value.items():
        if not isinstance(attr, str):
            raise ValueError(f"mailbox {name!r}: the attribute must be a string, not {attr!r}")
        _mailbox_name(name)
        if name.lower() in seen:
            raise ValueError(f"mailbox {name!r} is named twice (names ignore case here)")
        seen.add(name.lower())
        try:
            out.append((name, _attribute(attr)))
        except ValueError as e:
            raise ValueError(f"mailbox {name!r}: {e}") from None
    return tuple(out)


def _mailbox_name(name: str) -> None:
    """
    Refuse what no store accepts (empty levels, levels starting with a dot,
    control characters) and INBOX; what only one store's layout refuses
    (a dot inside a Maildir++ name) is found at the user's LIST and logged.
    """
    if not name or name.upper() == "INBOX":
        raise ValueError(f"{name!r} cannot be a special-use mailbox name")
    if any(level == "" or level.startswith(".") for level in name.split("/")):
        raise ValueError(f"{name!r} cannot be a mailbox name: empty level or level starting with '.'")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(f"{name!r} cannot be a mailbox name: it holds a control character")


def _auto_create(value) -> None:
    for name in value:
        _mailbox_name(name)


@dataclass(frozen=True)
class QuotaSection:
    """C{[quota]}: RFC 9208 limits, enforced on APPEND, COPY and MOVE."""

    storage: Any = opt(
        0,
        "Storage limit per user over all of the user's mailboxes, in KiB\n"
        "(RFC 9208 counts storage in units of 1024 octets) or as a string with\n"
        "a binary unit: \"500M\", \"1G\", \"2T\".  0: no storage limit.",
        convert=parse_size,
    )
    messages: int = opt(
        0, "Message count limit per user over all mailboxes.  0: no limit.", _non_negative
    )
    users: Any = opt(
        (),
        "Per-user overrides, a table of user = { storage = ..., messages = ... };\n"
        "a resource left out keeps the global value, 0 lifts the limit:\n"
        "  [quota.users]\n"
        "  alice = { storage = \"10G\" }\n"
        "  bob = { storage = 0, messages = 0 }",
        convert=_quota_users,
    )


@dataclass(frozen=True)
class MailboxesSection:
    """C{[mailboxes]}: RFC 6154 special-use mailboxes."""

    special_use: Any = opt(
        DEFAULT_SPECIAL_USE,
        "Special-use mailboxes (RFC 6154): a table of mailbox name = attribute,\n"
        "attributes \\All, \\Archive, \\Drafts, \\Flagged, \\Junk, \\Sent, \\Trash\n"
        "(in TOML strings write the backslash twice, or leave it out).  Names are\n"
        "compared without regard to case.  Setting it replaces the whole default.",
        convert=_special_use,
    )
    auto_create: tuple[str, ...] = opt(
        (),
        "Mailboxes created for a user when missing, at the user's LIST (like\n"
        "Dovecot's auto = create), for example [\"Sent\", \"Drafts\", \"Trash\"].",
        _auto_create,
    )


@dataclass(frozen=True)
class LmtpSection:
    """C{[lmtp]}: delivery over LMTP (the listeners are C{lmtp_listen})."""

    recipient_delimiter: str = opt(
        "",
        "Characters that separate a user from a detail, as Postfix's option of\n"
        "the same name: with \"+\", mail to alice+lists@example.org goes to\n"
        "alice's folder \"lists\" if it exists, else to her INBOX.  Empty: none.",
    )
    max_message_size: int = opt(
        0,
        "Largest message accepted, in octets (advertised as SIZE).  0: the same\n"
        "as limits.max_literal, the largest APPEND.",
        _non_negative,
    )
    max_recipients: int = opt(
        100, "Recipients accepted in one transaction (RFC 5321 asks for 100).", _positive
    )
    timeout: float = opt(
        300.0, "Seconds an LMTP connection may stay silent before it is closed.", _positive
    )
    delivery_timeout: float = opt(
        60.0,
        "Seconds one delivery may take (a hung store) before the recipient is\n"
        "answered 451 and the MTA tries again later.",
        _positive,
    )
    max_connections: int = opt(
        100,
        "Open LMTP connections accepted at once; beyond them the MTA hears 421\n"
        "and tries again later (Postfix opens up to 20 per destination).",
        _positive,
    )


@dataclass(frozen=True)
class UrlauthSection:
    """C{[urlauth]}: URLAUTH (RFC 4467) URLs fetched by others."""

    submit_user: str = opt(
        "",
        "The user name the submission server (RFC 4468 BURL) logs in with to\n"
        "fetch URLAUTH URLs whose access is submit+<user> on that user's behalf\n"
        "(Dovecot's imap_urlauth_submit_user).  Empty: no one may fetch them.",
    )


@dataclass(frozen=True)
class FtsSection:
    """C{[fts]}: the full-text index behind SEARCH BODY and TEXT (L{imapd.fts})."""

    enabled: bool = opt(
        True,
        "Answer SEARCH BODY and TEXT from a full-text index kept in index_dir,\n"
        "updated in the background after new mail arrives.  Off: every such\n"
        "search reads the messages (the answers are the same either way).",
    )
    max_part_size: int = opt(
        10485760,
        "Largest decoded text, in characters, of one message part or header\n"
        "the index takes; a message with a larger one is left out of the index\n"
        "and read by each search instead.",
        _positive,
    )
    max_message_size: int = opt(
        33554432,
        "Largest message, in octets, the index reads; a larger one is left out\n"
        "of the index and read by each search that needs its text, so that\n"
        "indexing never holds a huge message (and its decoded text) in memory.",
        _positive,
    )


def _hash_format(value) -> None:
    from imapd.cluster.hashing import check_format

    check_format(value)


def _plain_listeners(value) -> None:
    """Endpoint strings for a service without TLS (tls: is refused)."""
    from conf.endpoints import check_endpoint, uses_tls_section

    for description in value:
        check_endpoint(description)
        if uses_tls_section(description):
            raise ValueError(f"{description!r}: this service has no TLS (listeners are plain): "
                             f"use tcp: or unix:")


def _export_files(value) -> None:
    from imapd.cluster.exports import FORMATS

    for item in value:
        kind, sep, path = item.partition(":")
        if not sep or kind not in FORMATS or not path.startswith("/"):
            raise ValueError(f"{item!r}: write FORMAT:/absolute/path, FORMAT one of "
                             f"{', '.join(FORMATS)}")


@dataclass(frozen=True)
class ClusterSection:
    """C{[cluster]}: several nodes on one shared store (CLUSTER.md)."""

    hosts_file: str = opt(
        "",
        "The host table on the shared store (JSON: hosts, weights, up/down, an\n"
        "epoch), changed with imapd-admin cluster ...; placements are kept in the\n"
        "directory HOSTS_FILE.placements beside it.  Empty: no cluster.",
        kind=PATH,
    )
    node: str = opt(
        "",
        "This node's name for its placement records (its address in the host\n"
        "table, say).  Empty: the machine's host name.",
    )
    relay: bool = opt(
        False,
        "Relay the login of a user owned by another node to it (proxy when not\n"
        "ours), so that a TCP balancer or DNS round robin can front equal nodes.\n"
        "Needs node.  The owner believes the\n"
        "client address this node sends when this node is in its\n"
        "haproxy_trusted_networks.",
    )
    relay_tls: bool = opt(
        False,
        "Say STARTTLS to the owner before relaying a login to it; its\n"
        "certificate must name its address in the host table (an IP\n"
        "subjectAltName) and chain to relay_tls_ca.",
    )
    relay_tls_ca: str = opt(
        "",
        "PEM CA certificates for relay_tls.  Empty: the system's trust store.",
        kind=PATH,
    )
    move_timeout: float = opt(
        30.0,
        "imapd-admin cluster move and flush: the longest wait for the moved\n"
        "users' sessions on the old host to end (it ends them at its next\n"
        "check); their new logins wait meanwhile.",
        _non_negative,
    )
    user_kick_delay: float = opt(
        2.0,
        "Seconds a moved user's new logins still wait after its old sessions\n"
        "ended (Dovecot's director_user_kick_delay).",
        _non_negative,
    )
    username_hash: str = opt(
        "%Lu",
        "The hash key of a user, as Dovecot's director_username_hash: %u the\n"
        "name, %n the part before the first @, %d the part after, %L lowercases\n"
        "(ASCII only).  Every node, MTA and proxy must use the same.",
        _hash_format,
    )
    user_expire: float = opt(
        900.0,
        "Seconds a placed user stays on its host after its last lookup\n"
        "(Dovecot's director_user_expire); only users not placed follow the ring.",
        _non_negative,
    )
    recipient_delimiter: str = opt(
        "+",
        "Socketmap lookups drop the local part's extension from this character\n"
        "on (user+detail@example.org is user@example.org).  Empty: none.",
    )
    socketmap_listen: tuple[str, ...] = opt(
        (),
        "Where the Postfix socketmap server listens (tcp:PORT:interface=ADDR or\n"
        "unix:PATH); it answers lmtp:inet:<owner>:<lmtp port> for the map name\n"
        "\"transport\" and the owner's address for \"host\".  Empty: none.",
        _plain_listeners,
    )
    auth_http_listen: tuple[str, ...] = opt(
        (),
        "Where the nginx mail auth_http service listens (tcp:PORT:interface=ADDR).\n"
        "It checks the password and answers the owner's Auth-Server/Auth-Port.\n"
        "Empty: none.",
        _plain_listeners,
    )
    auth_http_key: str = opt(
        "",
        "When set, auth_http requests must carry this value in an X-Auth-Key\n"
        "header (nginx: auth_http_header X-Auth-Key \"...\").",
    )
    auth_http_wait: int = opt(
        3,
        "Seconds nginx waits (Auth-Wait) before the client may try again after a\n"
        "failed login.",
        _non_negative,
    )
    auth_http_max_attempts: int = opt(
        10,
        "After this many failed attempts in one connection nginx is told to\n"
        "close it (no Auth-Wait), as nginx's documentation asks.",
        _positive,
    )
    health_interval: float = opt(
        0.0,
        "Seconds between health checks of every host in the table by this node\n"
        "(an IMAP greeting, and a test login with health_login).  0: no checks.",
        _non_negative,
    )
    health_timeout: float = opt(
        5.0, "Seconds a probe may take before the host counts as failing.", _positive)
    health_fall: int = opt(
        3, "Failed probes in a row after which an up host is marked down.", _positive)
    health_rise: int = opt(
        2,
        "Good probes in a row after which a host the checks marked down is up\n"
        "again (a host an admin took down stays down).",
        _positive,
    )
    health_login: str = opt(
        "",
        "\"user:password\" of a test account the probes log in with.  Empty:\n"
        "the greeting is enough.",
    )
    health_proxy_protocol: bool = opt(
        False,
        "Start each probe with a PROXY header (\"PROXY UNKNOWN\"), for hosts whose\n"
        "table port is a haproxy: listener (nginx with proxy_protocol on in\n"
        "front); this node must be in their haproxy_trusted_networks.",
    )
    export_files: tuple[str, ...] = opt(
        (),
        "Files rewritten atomically by imapd-admin on every change of the table,\n"
        "as FORMAT:/path (tsv, json, transport, qgrp), e.g.\n"
        "[\"transport:/etc/postfix/imapd_transport\"].",
        _export_files,
    )
    export_domain: str = opt(
        "",
        "Domain appended to user names without one in transport and qgrp exports.",
    )


#: Table name ("" for the top level) -> section class, in documentation order.
@dataclass(frozen=True)
class MetricsSection:
    """C{[metrics]}: the Prometheus endpoint (L{imapd.metrics})."""

    listen: tuple[str, ...] = opt(
        (),
        "Where to serve Prometheus metrics over HTTP (any path), as endpoint\n"
        "strings like listen: tcp:9143:interface=127.0.0.1.  Needs the\n"
        "prometheus-client package (pip install 'imapd[metrics]').  The metrics\n"
        "tell who is busy: listen where only the monitoring can connect.\n"
        "Empty: no metrics.",
        check=lambda value: _plain_listeners(value),
    )


SECTIONS: dict[str, type] = {
    "": ServerSection,
    "tls": TLSSection,
    "auth": AuthSection,
    "mail": MailSection,
    "storage": StorageSection,
    "limits": LimitsSection,
    "quota": QuotaSection,
    "mailboxes": MailboxesSection,
    "urlauth": UrlauthSection,
    "fts": FtsSection,
    "lmtp": LmtpSection,
    "userdb": UserdbSection,
    "ldap": LdapSection,
    "service": ServiceSection,
    "cluster": ClusterSection,
    "log": LogSection,
    "metrics": MetricsSection,
}


@dataclass(frozen=True)
class Config:
    """
    The validated configuration, paths absolute.

    @ivar source: the configuration file, or None for defaults and command
        line only.
    @ivar origins: where each option that is not at its default was set
        (C{imapd-admin config}).
    """

    server: ServerSection = field(default_factory=ServerSection)
    tls: TLSSection = field(default_factory=TLSSection)
    auth: AuthSection = field(default_factory=AuthSection)
    mail: MailSection = field(default_factory=MailSection)
    storage: StorageSection = field(default_factory=StorageSection)
    limits: Any = field(default_factory=LimitsSection)
    quota: QuotaSection = field(default_factory=QuotaSection)
    mailboxes: MailboxesSection = field(default_factory=MailboxesSection)
    urlauth: UrlauthSection = field(default_factory=UrlauthSection)
    fts: FtsSection = field(default_factory=FtsSection)
    lmtp: LmtpSection = field(default_factory=LmtpSection)
    userdb: UserdbSection = field(default_factory=UserdbSection)
    ldap: LdapSection = field(default_factory=LdapSection)
    service: ServiceSection = field(default_factory=ServiceSection)
    cluster: ClusterSection = field(default_factory=ClusterSection)
    log: LogSection = field(default_factory=LogSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    source: Optional[str] = None
    #: Dotted option name -> where it was set (the file, or "command
    #: line"); options left at their defaults are absent.
    origins: Any = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Spec:
    """One option, flattened: what the loader and the example file need."""

    name: str
    table: str
    key: str
    type: Any
    default: Any
    doc: str
    check: Optional[Callable]
    kind: str
    convert: Optional[Callable] = None


def _type_of(section, f) -> Any:
    import typing

    hints = typing.get_type_hints(section)
    return hints.get(f.name, f.type)


def option_specs() -> list[Spec]:
    """Every option, in documentation order."""
    specs = []
    for table, section in SECTIONS.items():
        for f in dataclasses.fields(section):
            specs.append(
                Spec(
                    name=f"{table}.{f.name}" if table else f.name,
                    table=table,
                    key=f.name,
                    type=_type_of(section, f),
                    default=f.default,
                    doc=f.metadata["doc"],
                    check=f.metadata["check"],
                    kind=f.metadata["kind"],
                    convert=f.metadata.get("convert"),
                )
            )
    return specs

