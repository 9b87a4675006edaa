# -*- test-case-name: tests.imapd.test_writes -*-
"""
Writing short messages to a socket without a reactor turn (L{write_now}).
"""

from __future__ import annotations

__all__ = ["write_now"]


def write_now(transport, data: bytes) -> None:
    """
    C{transport.write(data)}, but sent at once when nothing is queued
    before it.  Twisted's write registers the socket for writing, sends on
    the next reactor turn and unregisters it: two C{epoll_ctl} calls and a
    turn for each short reply into an empty socket buffer, more than the
    C{send} itself: an LMTP delivery has four replies, and two messages
    on the delivery link between processes.  What the socket does not
    take, and anything on a transport that is not a plain socket's, goes
    through C{transport.write}.
    """
    sock = getattr(transport, "socket", None)
    if (sock is not None and transport.connected and not transport.disconnecting
            and len(transport.dataBuffer) == transport.offset
            and not getattr(transport, "_tempDataLen", 1)
            and not getattr(transport, "_sendmsgQueue", None)):
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # The transport's own write finds the error and closes.
            sent = 0
        data = data[sent:]
    if data:
        transport.write(data)
