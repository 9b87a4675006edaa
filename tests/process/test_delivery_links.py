"""
The delivery links between the services process and the pool workers
(L{imapd.process.delivery.DeliveryLinks}, L{WorkerDeliveries} with
C{server_uid}), without processes: which deliveries take a link, what a
lost link answers, and what a worker refuses on one.
"""

from __future__ import annotations

import os
import socket

import pytest
from twisted.internet import defer
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs

from imapd.auth.userdb import UserRecord
from imapd.delivery.core import DeliveryError, Message, Recipient
from imapd.process.delivery import DeliveryLinks, WorkerDeliveries, delivery_request
from imapd.process.wire import Decoder, frame, pool_index


class _Transport(StringTransport):
    def __init__(self) -> None:
        super().__init__()
        self.fds: list[int] = []

    def sendFileDescriptor(self, fd: int) -> None:
        self.fds.append(fd)


class _Reactor:
    """Adopts a link's socket as a protocol over a L{_Transport}."""

    def __init__(self) -> None:
        self.adopted: list = []

    def adoptStreamConnection(self, fd, family, factory) -> None:
        proto = factory.buildProtocol(None)
        transport = _Transport()
        proto.makeConnection(transport)
        self.adopted.append((proto, transport))


def _fd() -> int:
    ours, theirs = socket.socketpair()
    theirs.close()
    return ours.detach()


def _links(indexes=(0, 1), workers=2, uid=1000):
    reactor = _Reactor()
    links = DeliveryLinks(reactor)
    for i in indexes:
        links.add({"op": "link", "link": i, "index": i, "workers": workers, "uid": uid,
                   "title": f"imapd: worker pool-{i + 1}"}, _fd())
    return links, reactor


def _sent(transport: _Transport) -> list[dict]:
    decoder = Decoder()
    decoder.feed(transport.value())
    return [message for message, _fds in decoder.messages()]


def _recipient(name: str, uid=None) -> Recipient:
    record = UserRecord(name, uid=uid, gid=uid)
    return Recipient(f"{name}@example.org", name, None, None, record)


def _deliver(links, recipient):
    request, fds = delivery_request(recipient, Message.from_bytes(b"Subject: x\r\n\r\nx\r\n"),
                                    "s@example.net")
    return links.send(recipient, request, fds)


def test_a_virtual_users_delivery_takes_her_workers_link_and_its_answer():
    links, reactor = _links()
    bob = _recipient("bob")
    d = _deliver(links, bob)
    assert d is not None
    proto, transport = reactor.adopted[pool_index("bob", 2)]
    (request,) = _sent(transport)
    assert request["op"] == "deliver" and request["address"] == "bob@example.org"
    other = reactor.adopted[1 - pool_index("bob", 2)][1]
    assert other.value() == b""
    answers = []
    d.addCallback(answers.append)
    proto.dataReceived(frame({"op": "delivered", "req": request["req"], "ok": True,
                              "mailbox": "INBOX", "uid": 7}))
    assert answers[0]["uid"] == 7
    # A user under the server's own uid is a virtual user too.
    assert _deliver(links, _recipient("carol", uid=1000)) is not None


@pytest.mark.parametrize("uid", [0, 1001])
def test_root_and_system_users_go_through_the_master(uid):
    links, _reactor = _links()
    assert _deliver(links, _recipient("alice", uid=uid)) is None


def test_no_link_yet_means_the_master():
    index = pool_index("bob", 2)
    links, _reactor = _links(indexes=(1 - index,))
    assert _deliver(links, _recipient("bob")) is None
    assert _deliver(DeliveryLinks(_Reactor()), _recipient("bob")) is None


def test_a_lost_link_answers_451_at_once_and_is_not_used_again():
    links, reactor = _links()
    d = _deliver(links, _recipient("bob"))
    proto, _transport = reactor.adopted[pool_index("bob", 2)]
    failures = []
    d.addErrback(failures.append)
    with capturedLogs() as events:
        proto.connectionLost(None)
    (failure,) = failures
    assert failure.check(DeliveryError)
    assert (failure.value.code, failure.value.status) == (451, "4.3.0")
    assert any(e["log_level"] == LogLevel.warn
               and "ended during a delivery; answered 451" in e["log_format"]
               and e["title"] == f"imapd: worker pool-{pool_index('bob', 2) + 1}"
               for e in events)
    assert _deliver(links, _recipient("bob")) is None


def test_closing_waits_for_the_answers_under_way():
    links, reactor = _links()
    d = _deliver(links, _recipient("bob"))
    proto, transport = reactor.adopted[pool_index("bob", 2)]
    other = reactor.adopted[1 - pool_index("bob", 2)][1]
    links.close()
    assert other.disconnecting and not transport.disconnecting
    assert _deliver(links, _recipient("bob")) is None
    (request,) = _sent(transport)
    proto.dataReceived(frame({"op": "delivered", "req": request["req"], "ok": True,
                              "mailbox": "INBOX", "uid": 1}))
    assert d.called and transport.disconnecting


def test_a_bad_link_message_is_refused_and_its_descriptor_closed():
    from imapd.process.wire import ProtocolError

    fd = _fd()
    with pytest.raises(ProtocolError):
        DeliveryLinks(_Reactor()).add({"op": "link", "index": 2, "workers": 2, "uid": 0}, fd)
    with pytest.raises(OSError):
        os.fstat(fd)


@pytest.mark.parametrize("uid", [0, 4242])
def test_a_worker_refuses_a_user_not_of_the_pool_on_a_link(uid):
    """
    Only the master may route a delivery to a system user's worker: on a
    link a pool worker delivers only users of its own uid (or none).
    """
    replies = []
    ran = []

    def run(user, fn, *args):
        ran.append(user)
        return defer.succeed(None)
    deliveries = WorkerDeliveries(None, run, lambda user: None, replies.append)
    request, _fds = delivery_request(_recipient("eve", uid=uid),
                                     Message.from_bytes(b"Subject: x\r\n\r\nx\r\n"), "")
    on_link = []
    with capturedLogs():
        deliveries.handle(dict(request, req=3), [], send=on_link.append, server_uid=1000)
    assert ran == [] and replies == [] and deliveries.active == 0
    assert on_link == [{"op": "delivered", "req": 3, "ok": False, "code": 451,
                        "status": "4.3.5", "text": "This worker does not serve this user"}]
