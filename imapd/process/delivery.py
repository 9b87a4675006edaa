# -*- test-case-name: tests.process.test_delivery_workers -*-
"""
Delivery in the recipient's own mail worker (issues 14 and 15).

The C{imapd: services} process speaks LMTP and looks recipients up; the
store work of each recipient goes, through the master, to the worker
that serves that user's logins: the pool worker of its name's hash for a
virtual user, the user's own worker (running as the user's uid, started
if needed as a login starts it) for a system user.  So a delivery takes
the same locks, caches and uid as that user's sessions, the files it
makes are the user's, and an IDLE session of the user is woken directly,
in the same process.

    services --deliver (record, message, fd)--> master --deliver--> worker
    services <--reply (mailbox, uid | error)--- master <--delivered-- worker

A virtual user's delivery takes a shorter way: the master links the
services process to each pool worker of its generation with a socket
pair of their own (L{DeliveryLinks}), and the request and its answer
travel on it directly, two hops instead of four (a quarter of the CPU
time a delivery cost went to the master's relaying).  The master's way
remains for system users (whose worker may have to be started) and
whenever a link is missing: not made yet, or its worker ended.

    services --deliver--> pool worker    (link)
    services <--delivered-- pool worker

The message travels in the request while it is held in memory (base64,
at most L{imapd.delivery.core.Message.MEMORY} octets), else as the
descriptor of its spilled file, which the worker copies with pread(2).
The master keeps its copy of that descriptor until the worker answers.
A worker that dies before answering makes the master answer 451 4.3.0
(the store's transaction leaves nothing half-written).
"""

from __future__ import annotations

from typing import Optional

from twisted.internet import defer
from twisted.logger import Logger

from imapd.auth.userdb import UserRecord
from imapd.delivery.batch import DeliveryQueue
from imapd.delivery.core import DeliveryError, Message, Recipient, TemporaryFailure
from imapd.process.channel import Channel, Requests, _close, adopt_channel
from imapd.process.wire import (
    ProtocolError,
    b64,
    in_pool,
    pool_index,
    record_from_json,
    record_to_json,
    unb64,
)

__all__ = ["delivery_request", "delivery_outcome", "failed_reply", "WorkerDeliveries",
           "DeliveryLinks", "record_of"]

log = Logger(namespace="imapd.delivery")


def record_of(recipient: Recipient) -> UserRecord:
    """The user record a delivery to C{recipient} is routed and stored by."""
    return recipient.record or UserRecord(recipient.user, home=recipient.home)


def delivery_request(recipient: Recipient, message: Message, sender: str) -> tuple[dict, list]:
    """The C{deliver} message for the master and the descriptors to send with it."""
    record = record_of(recipient)
    request = {"op": "deliver", "record": record_to_json(record),
               "address": recipient.address, "folder": recipient.folder, "sender": sender}
    held = message.held()
    if held is not None:
        request["data"] = b64(held)
        return request, []
    request["size"] = message.size
    return request, [message.fileno()]


def failed_reply(error: DeliveryError) -> dict:
    """The reply fields of a delivery that did not happen."""
    return {"ok": False, "code": error.code, "status": error.status, "text": error.text}


def delivery_outcome(reply: dict) -> tuple[str, int]:
    """
    (mailbox, UID) of a reply to L{delivery_request}.

    @raises DeliveryError: the reply says the delivery failed.
    """
    if reply.get("ok"):
        return str(reply.get("mailbox", "")), int(reply.get("uid", 0))
    code, status = reply.get("code"), reply.get("status")
    if not isinstance(code, int) or not 400 <= code < 600 or not isinstance(status, str):
        raise TemporaryFailure("Temporary internal error")
    raise DeliveryError(str(reply.get("text", "")), code, status)


class WorkerDeliveries:
    """
    A mail worker's side: run each C{deliver} request in the worker's
    storage pool under the recipient's share, answer C{delivered}, and
    wake the user's IDLE sessions here.

    @param deliverer: an L{imapd.delivery.core.Deliverer} (its lookup is
        not used: the services process looked the recipient up).
    @param run: C{run(user, fn, *args) -> Deferred}, the storage pool.
    @param changed: C{changed(user)}, the IDLE wake-up
        (L{imapd.mailwatch.MailWatcher.changed}).
    """

    def __init__(self, deliverer, run, changed, send) -> None:
        self.deliverer = deliverer
        self.run = run
        #: Deliveries to one mailbox that come together share a transaction.
        self.queue = DeliveryQueue(deliverer, run)
        self.changed = changed
        self.send = send
        #: Deliveries under way (a worker does not leave while there are).
        self.active = 0

    def handle(self, message: dict, fds: list, send=None, server_uid=None) -> defer.Deferred:
        """
        Start the delivery C{message} asks for; the Deferred fires when it
        is answered (with C{send}, by default to the master).

        @param server_uid: for a request that did not come through the
            master (a delivery link): only a user of the pool, under this
            uid, is delivered (L{imapd.process.wire.in_pool}); the master
            checks the others.
        """
        import os

        send = send or self.send
        req = message.get("req")
        self.active += 1
        try:
            recipient, sender, mail = self._decode(message, fds)
        except (ProtocolError, OSError, KeyError, TypeError, ValueError) as e:
            log.error("A delivery request could not be read: {error}", error=e)
            self.active -= 1
            send({"op": "delivered", "req": req, **failed_reply(
                TemporaryFailure("Temporary internal error"))})
            return defer.succeed(None)
        finally:
            for fd in fds:
                os.close(fd)
        if server_uid is not None and (recipient.record.uid == 0 or not in_pool(
                recipient.record, server_uid)):
            mail.close()
            self.active -= 1
            log.error("A delivery to {user} (uid {uid}) came on a link to a pool worker",
                      user=recipient.user, uid=recipient.record.uid)
            # RFC 3463 X.3.5: the system is not configured to deliver this.
            send({"op": "delivered", "req": req, **failed_reply(
                TemporaryFailure("This worker does not serve this user", 451, "4.3.5"))})
            return defer.succeed(None)
        d = self.queue.deliver(recipient, mail, sender)

        def done(result):
            mail.close()
            self.active -= 1
            if isinstance(result, tuple):
                mailbox, uid = result
                send({"op": "delivered", "req": req, "ok": True, "mailbox": mailbox,
                      "uid": uid})
                # IDLE sessions of this user in this worker look now.
                self.changed(recipient.user)
                return None
            error = result.check(DeliveryError) and result.value
            if not error:
                log.failure("Delivery to {user}", result, user=recipient.user)
                error = TemporaryFailure("Temporary internal error")
            send({"op": "delivered", "req": req, **failed_reply(error)})
            return None
        return d.addBoth(done)

    @staticmethod
    def _decode(message: dict, fds: list) -> tuple[Recipient, str, Message]:
        record = record_from_json(message["record"])
        folder: Optional[str] = message.get("folder")
        if folder is not None and not isinstance(folder, str):
            raise ProtocolError("bad folder")
        recipient = Recipient(str(message["address"]), record.name, record.home, folder, record)
        if "data" in message:
            mail = Message.from_bytes(unb64(message["data"]))
        elif len(fds) == 1:
            mail = Message.from_descriptor(fds[0], int(message["size"]))
        else:
            raise ProtocolError("a delivery needs its message")
        return recipient, str(message.get("sender", "")), mail


class _Link:
    """One delivery link: the channel to a pool worker and its requests."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.channel: Optional[Channel] = None
        self.requests = Requests()
        self.lost = False


class DeliveryLinks:
    """
    The services process's side of the delivery links: which pool worker
    of this generation has one (C{link} messages from the master), and
    the request to send on it.

    @param reactor: adopts the links' sockets.
    """

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self.links: dict[int, _Link] = {}
        #: The pool's size and uid, as the master gave them.
        self.workers = 0
        self.uid: Optional[int] = None

    def add(self, message: dict, fd: int) -> None:
        """
        A C{link} from the master: the pool worker C{index}'s socket
        C{fd}, which is closed here (the channel works on a duplicate).
        """
        index, workers, uid = (message.get("index"), message.get("workers"),
                               message.get("uid"))
        if not (isinstance(index, int) and isinstance(workers, int) and isinstance(uid, int)
                and 0 <= index < workers):
            _close(fd)
            raise ProtocolError("bad link")
        self.workers, self.uid = workers, uid
        link = _Link(str(message.get("title") or f"imapd: worker pool-{index + 1}"))

        def on_message(channel, reply: dict, fds) -> None:
            for received in fds:
                _close(received)
            if reply.get("op") == "delivered":
                link.requests.answer(reply)

        def on_lost(channel) -> None:
            link.lost = True
            if self.links.get(index) is link:
                del self.links[index]
            if link.requests.pending():
                log.warn("{title} ended during a delivery; answered 451", title=link.title)
            link.requests.fail_all(DeliveryError("Mail worker ended, try again later",
                                                 451, "4.3.0"))
        link.channel = adopt_channel(self.reactor, fd, Channel(on_message, on_lost,
                                                               name=link.title))
        # A link made again (its worker was started again) takes over;
        # the old one, if still open, answers what it carries and closes.
        old = self.links.get(index)
        self.links[index] = link
        if old is not None and not old.lost:
            old.requests.when_idle(old.channel.close)

    def send(self, recipient: Recipient, request: dict, fds: list) -> Optional[defer.Deferred]:
        """
        Send C{request} (L{delivery_request}) on the link of the pool
        worker that serves C{recipient}: a Deferred of its answer, or None
        when the delivery must go through the master (a system user, or
        no live link to that worker).
        """
        record = record_of(recipient)
        if self.uid is None or not self.workers or record.uid == 0 \
                or not in_pool(record, self.uid):
            return None
        link = self.links.get(pool_index(record.name, self.workers))
        if link is None or link.lost:
            return None
        return link.requests.send(link.channel, request, fds)

    def close(self) -> None:
        """Stop using the links (a new generation took over)."""
        links, self.links = self.links, {}
        for link in links.values():
            link.requests.when_idle(link.channel.close)

