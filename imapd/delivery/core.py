# -*- test-case-name: tests.delivery.test_core -*-
"""
Final delivery into the same stores IMAP serves: the part LMTP
(L{imapd.delivery.lmtp}) and the LDA (L{imapd.delivery.lda}) share.

One delivery is: find the user (L{Deliverer.resolve}: the user database,
as a login does), open the user's store from the mail location
(L{storage.registry.open_store}, as L{imapd.account.MailRealm} does),
check the C{[quota]} policy, then append through the store's ordinary
transaction (the APPEND path: the same locks, the same temporary file
and rename, so a crash or an error leaves the mailbox as it was).  Every
step is blocking; the callers run it off the reactor.

Outcomes are L{DeliveryError}s carrying the SMTP reply code and the
enhanced status code (RFC 3463), so LMTP answers with them and the LDA
turns them into sysexits: a permanent failure (5xx) for an unknown user
or a full quota, a temporary one (4xx) for anything the MTA should
retry (a lock held too long, a full disk, a hung store).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import threading
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Optional

from twisted.logger import Logger

from imapd.auth.userdb import UserRecord
from storage.errors import InvalidMailboxName, LockUnavailable, MailboxNotFound, StoreError

__all__ = ["DeliveryError", "UnknownUser", "BadAddress", "OverQuota", "TemporaryFailure",
           "CannotCreate", "Recipient", "Message", "Deliverer", "userdb_lookup", "delivery_lookup",
           "split_address",
           "INBOX"]

_log = Logger(namespace="imapd.delivery")

INBOX = "INBOX"


class DeliveryError(Exception):
    """
    A delivery that did not happen, with its SMTP reply (RFC 5321
    section 4.2) and enhanced status code (RFC 3463).
    """

    code = 451
    status = "4.3.0"

    def __init__(self, text: str, code: Optional[int] = None,
                 status: Optional[str] = None) -> None:
        super().__init__(text)
        self.text = text
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    @property
    def temporary(self) -> bool:
        """Whether the sender should try again later (a 4xx reply)."""
        return 400 <= self.code < 500


class UnknownUser(DeliveryError):
    """RFC 3463 X.1.1: bad destination mailbox address."""

    code = 550
    status = "5.1.1"


class BadAddress(DeliveryError):
    """RFC 3463 X.1.3: bad destination mailbox address syntax."""

    code = 553
    status = "5.1.3"


class OverQuota(DeliveryError):
    """RFC 3463 X.2.2: mailbox full (the C{[quota]} policy)."""

    code = 552
    status = "5.2.2"


class CannotCreate(DeliveryError):
    """A folder named explicitly (the LDA's C{-m}) that cannot exist."""

    code = 550
    status = "5.2.0"


class TemporaryFailure(DeliveryError):
    """Anything worth retrying: 451 with a 4.x.x status."""


@dataclass(frozen=True)
class Recipient:
    """
    A recipient who exists.

    @ivar address: the address as given (RCPT TO, C{-d}), for
        C{Delivered-To:}.
    @ivar user: the user database's name for it (the login name).
    @ivar home: the user's home directory (C{~} of the mail location).
    @ivar folder: the mailbox asked for (C{user+detail}, C{-m FOLDER}),
        or None for INBOX.
    @ivar record: the user database's whole record (uid and gid: whose
        worker and uid deliver; C{userdb_mail}: the user's own mail
        location), or None for a user known by name and home only.
    """

    address: str
    user: str
    home: Optional[str] = None
    folder: Optional[str] = None
    record: Optional[UserRecord] = field(default=None, compare=False)


def split_address(address: str, delimiter: str = "") -> tuple[str, str, Optional[str]]:
    """
    C{(local part without detail, domain, detail)} of C{local@domain}.
    With a C{delimiter} (Postfix's and Dovecot's C{recipient_delimiter}),
    C{user+detail@domain} gives the detail; several delimiter characters
    may be given, the first one found splits.

    @raises BadAddress: an empty local part.
    """
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    detail = None
    if delimiter:
        cut = min((i for i in (local.find(c) for c in delimiter) if i > 0), default=-1)
        if cut > 0:
            local, detail = local[:cut], local[cut + 1:] or None
    if not local:
        raise BadAddress(f"no local part in {address!r}")
    return local, domain, detail


def userdb_lookup(authenticator) -> Callable:
    """
    The one place delivery asks who a user is: a blocking
    C{lookup(name) -> UserRecord or None} through the user database and
    the rules the logins use (an L{imapd.auth.authenticator.Authenticator}:
    the passwd-file's fields or the system's users, C{[userdb]
    first_valid_uid}).  A user the server never serves (root, a uid below
    C{first_valid_uid}) gets L{UnknownUser}, after a log line saying why,
    as its login would: mail for C{root} or C{daemon} is no mail of ours.
    """
    def lookup(name: str) -> Optional[UserRecord]:
        record = authenticator.userdb.lookup(name)
        if record is None:
            return None
        why = authenticator.refusal(record)
        if why is not None:
            _log.warn("Delivery to {user!r} refused: {reason}", user=name, reason=why)
            raise UnknownUser(f"<{name}>: no such user here")
        return record
    return lookup


def delivery_lookup(config, effective) -> Callable:
    """
    L{userdb_lookup} over the user database the configuration gives the
    logins (L{imapd.auth.build_authenticator}), for LMTP and the LDA.

    @raises conf.ConfigError: as L{imapd.auth.build_authenticator}.
    """
    from imapd.auth.authenticator import build_authenticator

    return userdb_lookup(build_authenticator(config, effective, runner=_inline))


def _inline(fn, *args):
    # Delivery looks users up in its own blocking code, never through the
    # authenticator's thread runner.
    return fn(*args)


class Message:
    """
    The message being delivered, as received: small ones in memory, large
    ones spilled to an anonymous temporary file (gone when closed or when
    the process dies), so a 50 MB DATA is never held whole.
    """

    #: Octets kept in memory before the message spills to disk.
    MEMORY = 1 << 20
    #: Octets per copy when a spilled message is written out.
    CHUNK = 1 << 20

    def __init__(self) -> None:
        #: The content while it is small; None once it is in C{_file}.
        self._memory: Optional[bytearray] = bytearray()
        self._file = None
        self.size = 0
        # Deliveries to several recipients read it from several threads.
        self._lock = threading.Lock()
        #: Whether lines end in CRLF (as LMTP sends them) or LF (a pipe).
        self.crlf: Optional[bool] = None

    @classmethod
    def from_bytes(cls, data: bytes) -> "Message":
        message = cls()
        message.write(data)
        return message

    @classmethod
    def from_file(cls, file: BinaryIO, limit: int = 0, first: bytes = b"") -> "Message":
        """
        C{first}, then C{file} read to its end.

        @param limit: the largest message accepted (0: none).
        @raises DeliveryError: 552 5.3.4 when there is more.
        """
        message = cls()
        chunk = first
        while True:
            if not chunk:
                chunk = file.read(cls.CHUNK)
            if not chunk:
                return message
            message.write(chunk)
            chunk = b""
            if limit and message.size > limit:
                message.close()
                raise DeliveryError(f"Message larger than {limit} octets", 552, "5.3.4")

    @classmethod
    def from_descriptor(cls, fd: int, size: int) -> "Message":
        """
        The C{size} octets of another process's message file C{fd} (a
        spilled L{Message} passed over a control socket), copied with
        pread(2): the file's offset is shared with its other readers.
        """
        message = cls()
        offset = 0
        while offset < size:
            chunk = os.pread(fd, min(cls.CHUNK, size - offset), offset)
            if not chunk:
                raise OSError(errno.EIO, f"message file ended at {offset} of {size} octets")
            message.write(chunk)
            offset += len(chunk)
        return message

    def held(self) -> Optional[bytes]:
        """The content while it is in memory, else None (see L{fileno})."""
        return bytes(self._memory) if self._memory is not None else None

    def fileno(self) -> int:
        """The descriptor of a spilled message's file."""
        self._file.flush()
        return self._file.fileno()

    def write(self, data: bytes) -> None:
        if self.crlf is None and b"\n" in data:
            self.crlf = data[:data.index(b"\n")].endswith(b"\r")
        self.size += len(data)
        if self._memory is not None:
            self._memory += data
            if len(self._memory) <= self.MEMORY:
                return
            data, self._memory = bytes(self._memory), None
            self._file = tempfile.TemporaryFile(prefix="imapd-delivery-")
        self._file.write(data)

    def stored_size(self, prefix: bytes) -> int:
        """The RFC822.SIZE with C{prefix}: every bare LF counts as CRLF."""
        from imapd.commands.quota import message_size

        if self._memory is not None:
            return message_size(prefix) + message_size(bytes(self._memory))
        total = message_size(prefix)
        with self._lock:
            for chunk in self._chunks():
                total += message_size(chunk)
        return total

    def with_prefix(self, prefix: bytes):
        """
        The message with C{prefix} (header lines) in front: bytes for a
        message in memory, else a temporary file at its start (the caller
        closes it), ready for L{storage.interfaces.ITransaction.append_file}.
        """
        if self._memory is not None:
            return prefix + self._memory
        out = tempfile.TemporaryFile(prefix="imapd-delivery-")
        out.write(prefix)
        with self._lock:
            for chunk in self._chunks():
                out.write(chunk)
        out.flush()
        out.seek(0)
        return out

    def _chunks(self):
        self._file.seek(0)
        while True:
            chunk = self._file.read(self.CHUNK)
            if not chunk:
                break
            # Keep a CRLF whole so that the bare-LF count stays right.
            if chunk.endswith(b"\r"):
                chunk += self._file.read(1)
            yield chunk
        self._file.seek(0, os.SEEK_END)

    def close(self) -> None:
        self._memory = None
        if self._file is not None:
            self._file.close()


def _header_value(text: str) -> str:
    """Header text without anything that could end the header line."""
    return "".join(c for c in text if c >= " " and c != "\x7f")


class Deliverer:
    """
    Deliver messages to users of this server (blocking; see the module
    docstring).

    @param location: the C{mail_location} (Dovecot syntax).
    @param lookup: C{lookup(name) -> UserRecord or None}
        (L{userdb_lookup}).
    @param index_dir: the per-node index directory (DESIGN.md rule 2).
    @param quota: the L{imapd.server.QuotaPolicy}.
    @param delimiter: C{recipient_delimiter}: characters that separate a
        user from a detail naming a folder; "" for none.
    @param open_store: the store registry's opener (a seam for tests).
    """

    def __init__(self, location: str, lookup: Callable, index_dir: Optional[str] = None,
                 quota=None, delimiter: str = "", open_store: Optional[Callable] = None,
                 hostname: str = "localhost") -> None:
        if open_store is None:
            from storage.registry import open_store
        if quota is None:
            from imapd.server import QuotaPolicy
            quota = QuotaPolicy()
        self.location = location
        self.lookup = lookup
        self.index_dir = index_dir
        self.quota = quota
        self.delimiter = delimiter
        self.hostname = hostname
        self._open_store = open_store
        #: Stores kept between deliveries (L{_kept_store}).
        self._stores: dict[tuple, object] = {}
        self._stores_lock = threading.Lock()

    def resolve(self, address: str, folder: Optional[str] = None) -> Recipient:
        """
        Blocking: the user C{address} names.  The whole address (without
        its detail) is looked up first, then its local part, so a
        passwd-file of C{alice@example.org} and one of C{alice} both work.

        @param folder: a folder asked for explicitly (the LDA's C{-m});
            otherwise the detail, if a delimiter is configured.
        @raises UnknownUser: nobody has that name.
        @raises BadAddress: the address has no local part.
        """
        local, domain, detail = split_address(address, self.delimiter)
        names = [f"{local}@{domain}", local] if domain else [local]
        for name in names:
            record = self.lookup(name)
            if record is not None:
                return Recipient(address, record.name, record.home, folder or detail, record)
        raise UnknownUser(f"<{address}>: no such user here")

    def deliver(self, recipient: Recipient, message: Message, sender: str = "",
                strict_folder: bool = False) -> tuple[str, int]:
        """
        Blocking: store C{message} for C{recipient}, with C{Return-Path:}
        (RFC 5321 section 4.4, the envelope sender) and C{Delivered-To:}
        (the address as given, as Postfix and Dovecot add it) in front.

        @param strict_folder: the folder was named explicitly (C{-m}): a
            name no store accepts is an error (L{CannotCreate}).  A folder
            that does not exist is never one: INBOX takes the message, as
            for a C{user+detail} that names no folder (Dovecot's LDA does
            the same).
        @return: (mailbox name, UID).
        @raises DeliveryError: see the module docstring.
        """
        from imapd import metrics

        try:
            result = self._deliver_to(recipient, message, sender, strict_folder)
        except DeliveryError as e:
            metrics.RECORDER.inc("imapd_deliveries_total",
                                 result="temporary" if e.temporary else "permanent")
            raise
        metrics.RECORDER.inc("imapd_deliveries_total", result="ok")
        return result

    def _deliver_to(self, recipient: Recipient, message: Message, sender: str,
                    strict_folder: bool) -> tuple[str, int]:
        prefix = self._trace(recipient, sender, message.crlf is not False)
        with self._kept_store(recipient) as store:
            try:
                return self._deliver(store, recipient, message, sender, prefix, strict_folder)
            except DeliveryError:
                raise
            except (StoreError, OSError) as e:
                raise self._temporary(e, recipient) from e

    def open_store(self, recipient: Recipient):
        """Blocking: the store of C{recipient}'s mail (closed by the caller)."""
        return self._store_of(recipient)

    def _store_of(self, recipient: Recipient):
        """
        The recipient's store, from its own mail location if the user
        database gives one.

        @raises TemporaryFailure: the store cannot be opened.
        """
        try:
            return self._open_store(self._location_of(recipient), recipient.user,
                                    recipient.home, self.index_dir)
        except StoreError as e:
            raise self._temporary(e, recipient) from e

    def _location_of(self, recipient: Recipient) -> str:
        from imapd.account import mail_location_of

        return (mail_location_of(recipient.record, self.location)
                if recipient.record is not None else self.location)

    #: Stores kept open between deliveries, at most this many.
    KEEP_STORES = 32

    @contextlib.contextmanager
    def _kept_store(self, recipient: Recipient):
        """
        The recipient's store for one delivery: one kept from an earlier
        delivery if its root is still there, else a new one; kept again
        afterwards if the delivery succeeded.  A worker's stream of
        deliveries to one user opened the store afresh for each one:
        parsing the location, choosing the lock methods, making sure the
        root exists -- a tenth of the cost of a delivery into an mbox.
        A store already lives as long as an IMAP session, which sees
        other processes' changes between its calls, so keeping one between
        deliveries asks nothing new of it.  A kept one is taken out while
        a delivery uses it, so no two threads share one, and one whose
        delivery failed is closed, so that the next delivery opens the
        store as if for the first time.

        @raises TemporaryFailure: the store cannot be opened.
        """
        key = (self._location_of(recipient), recipient.user, recipient.home, self.index_dir)
        with self._stores_lock:
            store = self._stores.pop(key, None)
        if store is not None and not os.path.isdir(store.root):
            store.close()
            store = None
        if store is None:
            store = self._store_of(recipient)
        try:
            yield store
        except BaseException:
            store.close()
            raise
        if getattr(store, "root", None) is None:
            store.close()  # no root to check next time: not kept
            return
        with self._stores_lock:
            # Another delivery to this user may have kept one meanwhile.
            displaced = self._stores.pop(key, None)
            self._stores[key] = store
            if displaced is not None:
                displaced.close()
            while len(self._stores) > self.KEEP_STORES:
                self._stores.pop(next(iter(self._stores))).close()

    def batchable(self, recipient: Recipient) -> bool:
        """
        Whether deliveries to C{recipient} may share a transaction
        (L{deliver_batch}): not under a quota, which judges each message
        against the usage before it.
        """
        limits = self.quota.limits_for(recipient.user, recipient.record)
        return not (limits.storage or limits.messages)

    def deliver_batch(self, batch: list) -> list:
        """
        Blocking: several deliveries to one user's one folder (C{batch}, a
        list of C{(recipient, message, sender)}, all L{batchable}) in one
        transaction: each message is written as L{deliver} writes it, and
        one commit gives them their UIDs, in order, under one lock and
        one sync of the UID list (Maildir) or of the file (mbox).  Several
        MTA connections delivering to one mailbox at once so share the
        work a delivery costs beyond its own message.

        @return: for each delivery, (mailbox name, UID) or the
            L{DeliveryError} it got; a failure of the transaction is every
            message's (nothing of it was stored).
        """
        if len(batch) == 1:
            try:
                return [self.deliver(*batch[0])]
            except DeliveryError as e:
                return [e]
        recipient = batch[0][0]
        try:
            with self._kept_store(recipient) as store:
                return self._deliver_batch(store, batch)
        except DeliveryError as e:
            return [e] * len(batch)
        except (StoreError, OSError) as e:
            return [self._temporary(e, recipient)] * len(batch)

    def _deliver_batch(self, store, batch: list) -> list:
        mailbox = self._open_target(store, batch[0][0], False)
        try:
            uids = self._append(mailbox, [
                (message.with_prefix(self._trace(recipient, sender, message.crlf is not False)),
                 sender) for recipient, message, sender in batch])
        finally:
            mailbox.close()
        if len(uids) != len(batch):
            raise TemporaryFailure("Temporary store failure, try again later")
        return [(mailbox.name, uid) for uid in uids]

    def _deliver(self, store, recipient, message, sender, prefix, strict_folder):
        mailbox = self._open_target(store, recipient, strict_folder)
        try:
            self._check_quota(store, recipient, message.stored_size(prefix))
            uids = self._append(mailbox, [(message.with_prefix(prefix), sender)])
        finally:
            mailbox.close()
        return mailbox.name, uids[-1] if uids else 0

    @staticmethod
    def _append(mailbox, items: list) -> tuple[int, ...]:
        """
        Append C{items} (C{(content, envelope sender)}: bytes or an open
        file, closed here) to C{mailbox} in one transaction; their UIDs.
        """
        try:
            tx = mailbox.transaction()
            try:
                for data, sender in items:
                    # mbox: the From_ line names the envelope sender, as
                    # every local delivery agent writes it (read as the
                    # message is queued: each message its own).
                    if hasattr(mailbox, "sender"):
                        mailbox.sender = sender or "MAILER-DAEMON"
                    if isinstance(data, bytes):
                        tx.append(data, (), None)
                    else:
                        tx.append_file(data, (), None)
                result = tx.commit()
            except BaseException:
                # Nothing half-written: the queued files go (the store
                # also cleans tmp/ on open, for a crash here).
                _rollback(tx)
                raise
        finally:
            for data, _sender in items:
                if not isinstance(data, bytes):
                    data.close()
        return result.appended

    def _open_target(self, store, recipient: Recipient, strict_folder: bool):
        """
        The mailbox to append to, opened for writing: the folder asked for
        if it exists, else INBOX (opened once: for mbox an open reads the
        file's state).
        """
        folder = recipient.folder
        if folder and folder.upper() != INBOX:
            try:
                return store.open(folder, False)
            except MailboxNotFound:
                pass
            except InvalidMailboxName as e:
                # A detail that is no folder name is no reason to bounce.
                if strict_folder:
                    raise CannotCreate(f"Folder {folder!r}: {e}") from None
        return store.open(INBOX, False)

    def _check_quota(self, store, recipient: Recipient, octets: int) -> None:
        from imapd.commands import quota
        from imapd.errors import CommandFailed

        # The user database's quota fields (LDAP user_attrs) win, as at login.
        limits = self.quota.limits_for(recipient.user, recipient.record)
        if not (limits.storage or limits.messages):
            return
        try:
            quota.refuse(limits, quota.usage(store), 1, octets)
        except CommandFailed as e:
            raise OverQuota(str(e)) from None

    def _trace(self, recipient: Recipient, sender: str, crlf: bool) -> bytes:
        eol = "\r\n" if crlf else "\n"
        text = (f"Return-Path: <{_header_value(sender)}>{eol}"
                f"Delivered-To: {_header_value(recipient.address)}{eol}")
        return text.encode("utf-8", "surrogateescape")

    def _temporary(self, error: Exception, recipient: Recipient) -> DeliveryError:
        """A store's error as the temporary failure the MTA retries."""
        cause = error if isinstance(error, OSError) else error.__cause__
        code = getattr(cause, "errno", None)
        if code in (errno.ENOSPC, errno.EDQUOT):
            status, text = "4.3.1", "Mail system full"
        elif isinstance(error, LockUnavailable):
            status, text = "4.2.0", "Mailbox busy (lock not available)"
        else:
            status, text = "4.3.0", "Temporary store failure"
        _log.warn("Delivery to {user} failed for now ({status}): {error}",
                  user=recipient.user, status=status, error=str(error))
        return TemporaryFailure(f"{text}, try again later", 451, status)


def _rollback(tx) -> None:
    try:
        tx.rollback()
    except Exception:
        _log.failure("rollback of a failed delivery")
