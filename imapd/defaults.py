# -*- test-case-name: tests.e2e.test_startup -*-
"""
The embedded default: what C{twistd -n imapd} uses when nothing is configured.

Whatever the configuration leaves empty is derived from C{data_dir}
(C{./imapd-data} by default) and created there on first start:

    imapd-data/tls/cert.pem, key.pem   self-signed certificate (SHA-256 logged)
    imapd-data/passwd                  passwd-file with the user 'demo'
    imapd-data/demo-password           demo's random password (mode 0600)
    imapd-data/home/demo               demo's home directory
    imapd-data/mail/%u                 Maildirs (maildir:<abs>/imapd-data/mail/%u)
    imapd-data/index                   the local index cache

Existing files are never replaced, so a second start serves the same
certificate and password.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from typing import Optional

from twisted.logger import Logger

from conf import COMMAND_LINE, Config, ConfigError
from conf.schema import AUTO
from conf.endpoints import is_local

__all__ = ["Effective", "prepare", "DEMO_USER"]

DEMO_USER = "demo"
#: The scheme of the demo user's password in the generated passwd-file.
DEMO_SCHEME = "SHA512-CRYPT"

log = Logger(namespace="imapd.start")


@dataclass(frozen=True)
class Effective:
    """Settings after defaults from C{data_dir} have been filled in."""

    hostname: str
    cert: Optional[str]
    key: Optional[str]
    #: Empty when PAM checks passwords and there is no passwd-file.
    passwd_file: str
    mail_location: str
    index_dir: str
    allow_plaintext_auth: bool


def _makedirs(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)


def _index_dir(config: Config, data_dir: str) -> str:
    """
    The index directory, created: option C{mail.index_dir}, else under
    C{data_dir}.

    @raises ConfigError: C{mail.index_dir} cannot be created (issue 16
        item 5: the option the sysadmin wrote is named, not C{data_dir}).
    """
    index_dir = config.mail.index_dir or os.path.join(data_dir, "index")
    try:
        _makedirs(index_dir)
        _give_to_mail_user(config, index_dir)
    except OSError as e:
        if not config.mail.index_dir:
            raise
        raise ConfigError(config.source or COMMAND_LINE, "mail.index_dir",
                          f"cannot create {index_dir}: {e.strerror or e}") from None
    return index_dir


def _give_to_mail_user(config: Config, path: str) -> None:
    """
    A directory root made for the pool workers goes to C{service.mail_user}
    (they run as that user once the master, started as root, forks them).
    """
    user = config.service.mail_user
    if not user or os.getuid() != 0 or os.stat(path).st_uid != 0:
        return
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return  # imapd.tap says so in one line
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _write_new(path: str, text: str, mode: int) -> None:
    """Create C{path} with C{text}; never replace an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _hash(password: str) -> str:
    from imapd.auth.schemes import hash_password

    hashed = hash_password(password, DEMO_SCHEME)
    return hashed if hashed.startswith("{") else f"{{{DEMO_SCHEME}}}{hashed}"


def _demo_passwd(data_dir: str) -> str:
    passwd = os.path.join(data_dir, "passwd")
    if os.path.exists(passwd):
        return passwd
    password = secrets.token_urlsafe(12)
    home = os.path.join(data_dir, "home", DEMO_USER)
    _makedirs(home)
    keep = os.path.join(data_dir, "demo-password")
    if os.path.exists(keep):
        os.unlink(keep)
    _write_new(keep, password + "\n", 0o600)
    # Dovecot passwd-file: user:password:uid:gid:gecos:home:shell:extra
    _write_new(passwd, f"{DEMO_USER}:{_hash(password)}::::{home}::\n", 0o600)
    log.info(
        "Created {passwd} with the user {user!r}, password {password!r} "
        "(shown once; also kept in {keep})",
        passwd=passwd,
        user=DEMO_USER,
        password=password,
        keep=keep,
    )
    return passwd


def _self_signed(data_dir: str, hostname: str) -> tuple[str, str]:
    from imapd.tls import generate_self_signed

    tls_dir = os.path.join(data_dir, "tls")
    cert = os.path.join(tls_dir, "cert.pem")
    key = os.path.join(tls_dir, "key.pem")
    if not (os.path.exists(cert) and os.path.exists(key)):
        _makedirs(tls_dir)
        generate_self_signed(cert, key, hostname)
        log.info("Generated a self-signed certificate for {hostname}: {cert}",
                 hostname=hostname, cert=cert)
    return cert, key


def _needs_data_dir(config: Config) -> bool:
    return not (
        (config.tls.cert or not config.tls.enabled)
        and (config.auth.passwd_file or config.auth.pam)
        and config.mail.location
        and config.mail.index_dir
    )


def _static_root(location: str) -> str | None:
    """
    The part of a mail location's path that is the same for every user
    (C{/srv/mail} of C{maildir:/srv/mail/%u}); C{None} when it starts at
    a home directory (C{~}), which is only known per user.
    """
    path = location.split(":", 1)[-1].split(":", 1)[0]
    if not path or path.startswith("~"):
        return None
    if "%" in path:
        prefix = path[: path.index("%")]
        path = prefix[: prefix.rfind("/")] or "/"
    return path


def _shared_storage(config: Config, location: str, index_dir: str, hostname: str) -> str:
    """
    Decide C{[mail] nfs_storage}, C{nfs_index} and the mbox lock defaults
    (L{storage.nfs}), log what was decided and why, and return the index
    directory to use (a per-host subdirectory when it is shared).
    """
    from storage import nfs

    mail = config.mail
    nfs.configure(mail.nfs_storage, mail.nfs_index, mail.mbox_read_locks,
                  mail.mbox_write_locks)
    root = _static_root(location)
    if root is None:
        log.info("NFS-safe mail storage: decided per user at first use "
                 "(mail.nfs_storage = {value!r}; the mail root is under each home)",
                 value=mail.nfs_storage)
    else:
        on = nfs.storage_flush(root)
        read, write = nfs.mbox_locks(root)
        log.info("NFS-safe mail storage {state}: {root} is on {kind} (mail.nfs_storage = "
                 "{value!r}); mbox locks: read {read}, write {write}",
                 state="on" if on else "off", root=root,
                 kind=nfs.fstype(root) or "an unknown filesystem", value=mail.nfs_storage,
                 read="+".join(read), write="+".join(write))
    shared_index = nfs.index_flush(index_dir)
    log.info("Index on shared storage {state}: {index} is on {kind} (mail.nfs_index = {value!r})",
             state="on" if shared_index else "off", index=index_dir,
             kind=nfs.fstype(index_dir) or "an unknown filesystem", value=mail.nfs_index)
    if shared_index:
        # One SQLite file is never opened by two nodes: their locks would
        # not meet (DESIGN.md rule 2: the index is per node).  The
        # machine's name, not the configured one, which nodes behind one
        # balancer often share.
        node = socket.gethostname() or hostname
        index_dir = os.path.join(index_dir, node.replace("/", "_"))
        _makedirs(index_dir)
        log.info("Index files of this node go to {index}", index=index_dir)
    return index_dir


def prepare(config: Config) -> Effective:
    """
    Fill in what C{config} leaves empty from C{data_dir}, creating it as
    needed, and decide whether plaintext logins are allowed.
    """
    data_dir = config.server.data_dir
    if not os.path.isdir(data_dir) and _needs_data_dir(config):
        # Private: it will hold a key, password hashes and mail.
        _makedirs(data_dir)
        log.info("Created {data_dir} for the embedded default", data_dir=data_dir)
    hostname = config.server.hostname or socket.gethostname() or "localhost"

    cert = key = None
    if config.tls.enabled:
        if config.tls.cert:
            cert, key = config.tls.cert, config.tls.key
        else:
            cert, key = _self_signed(data_dir, hostname)
        from imapd.tls import fingerprint

        log.info("TLS certificate {cert}, SHA-256 fingerprint {fp}",
                 cert=cert, fp=fingerprint(cert))

    passwd_file = config.auth.passwd_file
    passdb = config.auth.passdb
    if not passwd_file and not config.auth.pam and (not passdb or "passwd-file" in passdb):
        # With PAM the users are the system's (imapd.auth.build_authenticator),
        # with LDAP the directory's: no demo user.
        passwd_file = _demo_passwd(data_dir)

    location = config.mail.location
    if not location:
        mail = os.path.join(data_dir, "mail")
        _makedirs(mail)
        _give_to_mail_user(config, mail)
        location = f"maildir:{mail}/%u"

    index_dir = _index_dir(config, data_dir)
    index_dir = _shared_storage(config, location, index_dir, hostname)

    listen = config.server.listen
    if config.auth.allow_plaintext == AUTO:
        allow = all(is_local(description) for description in listen)
        if allow:
            log.info("Plaintext logins allowed: every listener is local (loopback "
                     "or UNIX socket); set auth.allow_plaintext = false to refuse them")
        else:
            log.info("Plaintext logins refused: some listener is not on a loopback "
                     "address; clients must use TLS (STARTTLS or implicit)")
    else:
        allow = config.auth.allow_plaintext
        log.info("Plaintext logins {what} (auth.allow_plaintext)",
                 what="allowed" if allow else "refused")
    return Effective(
        hostname=hostname,
        cert=cert,
        key=key,
        passwd_file=passwd_file,
        mail_location=location,
        index_dir=index_dir,
        allow_plaintext_auth=allow,
    )


def prepare_delivery(config: Config) -> Effective:
    """
    What the LDA (C{imapd-deliver}) needs of L{prepare}: the passwd-file,
    mail location and index directory the daemon uses, with the same
    shared-storage decisions (NFS flushing, mbox lock methods), but
    nothing generated: a delivery creates no certificate and no demo user.

    @raises OSError: the index directory cannot be created.
    """
    data_dir = config.server.data_dir
    hostname = config.server.hostname or socket.gethostname() or "localhost"
    passwd_file = config.auth.passwd_file
    if not passwd_file and not config.auth.pam:
        # As in prepare: with PAM the users are the system's.
        passwd_file = os.path.join(data_dir, "passwd")
    location = config.mail.location or f"maildir:{os.path.join(data_dir, 'mail')}/%u"
    index_dir = _index_dir(config, data_dir)
    index_dir = _shared_storage(config, location, index_dir, hostname)
    return Effective(hostname=hostname, cert=None, key=None, passwd_file=passwd_file,
                     mail_location=location, index_dir=index_dir, allow_plaintext_auth=False)
