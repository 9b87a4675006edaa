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
from imapd.process.wire import ProtocolError, b64, record_from_json, record_to_json, unb64

__all__ = ["delivery_request", "delivery_outcome", "failed_reply", "WorkerDeliveries"]

log = Logger(namespace="imapd.delivery")


def delivery_request(recipient: Recipient, message: Message, sender: str) -> tuple[dict, list]:
    """The C{deliver} message for the master and the descriptors to send with it."""
    record = recipient.record or UserRecord(recipient.user, home=recipient.home)
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

    def handle(self, message: dict, fds: list) -> defer.Deferred:
        """Start the delivery C{message} asks for; the Deferred fires when it is answered."""
        import os

        req = message.get("req")
        self.active += 1
        try:
            recipient, sender, mail = self._decode(message, fds)
        except (ProtocolError, OSError, KeyError, TypeError, ValueError) as e:
            log.error("A delivery request could not be read: {error}", error=e)
            self.active -= 1
            self.send({"op": "delivered", "req": req, **failed_reply(
                TemporaryFailure("Temporary internal error"))})
            return defer.succeed(None)
        finally:
            for fd in fds:
                os.close(fd)
        d = self.queue.deliver(recipient, mail, sender)

        def done(result):
            mail.close()
            self.active -= 1
            if isinstance(result, tuple):
                mailbox, uid = result
                self.send({"op": "delivered", "req": req, "ok": True, "mailbox": mailbox,
                           "uid": uid})
                # IDLE sessions of this user in this worker look now.
                self.changed(recipient.user)
                return None
            error = result.check(DeliveryError) and result.value
            if not error:
                log.failure("Delivery to {user}", result, user=recipient.user)
                error = TemporaryFailure("Temporary internal error")
            self.send({"op": "delivered", "req": req, **failed_reply(error)})
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
