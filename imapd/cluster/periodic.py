"""
L{Periodic}: a service that does one piece of work every C{interval}
seconds, never two at once, logging (not stopping on) a failure.  The
cluster's placement writes, placement refreshes and health checks are
all of this shape.
"""

from __future__ import annotations

from typing import Optional

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

__all__ = ["Periodic"]

log = Logger(namespace="imapd.cluster")


class Periodic(service.Service):
    """
    Subclasses define C{work()} (returns a Deferred or None) and
    C{failure_message}.

    @param interval: seconds between rounds; 0 or less: none.
    @param clock: the reactor (a L{task.Clock} in tests), default the
        global reactor.
    @param now: run the first round at start instead of after C{interval}.
    """

    failure_message = "periodic work failed"

    def __init__(self, interval: float, clock=None, now: bool = False) -> None:
        self.interval = interval
        self.clock = clock
        self.now = now
        self._loop: Optional[task.LoopingCall] = None
        self._running: Optional[defer.Deferred] = None

    def startService(self) -> None:
        super().startService()
        if self.interval <= 0:
            return
        self._loop = task.LoopingCall(self.run_once)
        if self.clock is not None:
            self._loop.clock = self.clock
        self._loop.start(self.interval, now=self.now)

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def run_once(self) -> Optional[defer.Deferred]:
        """One round, skipped while the last one still runs."""
        if self._running is not None:
            return None
        d = self._running = defer.maybeDeferred(self.work)

        def done(result):
            self._running = None
            return result
        d.addBoth(done)
        d.addErrback(lambda f: log.failure(self.failure_message, f))
        return None

    def work(self):
        raise NotImplementedError
