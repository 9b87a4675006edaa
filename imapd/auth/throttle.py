# -*- test-case-name: tests.security.test_sec_login_timing -*-
"""
Failed logins counted per remote address, across connections.

A per-connection limit (C{limits.max_failed_logins}) only makes a password
guesser reconnect.  This ledger counts failures by the client's address
in a leaky bucket: each failure adds one, and one is forgotten every
C{limits.failed_login_decay} seconds.  An address whose count has reached
C{limits.max_failed_logins_per_address} is refused at once (BYE, without a
password check) until enough has leaked away; a correct password does not
reset the count, so a guesser cannot interleave an account of its own.

Runs on the reactor thread only.  Memory is bounded: at most
L{FailureLedger.MAX_ADDRESSES} addresses are remembered; beyond that the
ones with the least left to count are dropped first.
"""

from __future__ import annotations

__all__ = ["FailureLedger"]


class FailureLedger:
    """Failed logins per address, decaying with time (see the module docstring)."""

    #: Most addresses remembered at once.
    MAX_ADDRESSES = 65536

    def __init__(self) -> None:
        #: address -> (level, when it was that level)
        self._levels: dict[str, tuple[float, float]] = {}

    def level(self, address: str, now: float, decay: float) -> float:
        """The failures of C{address} not yet forgotten at C{now}."""
        entry = self._levels.get(address)
        if entry is None:
            return 0.0
        level, at = entry
        level -= max(0.0, now - at) / decay if decay > 0 else 0.0
        if level <= 0:
            del self._levels[address]
            return 0.0
        return level

    def blocked(self, address: str, now: float, limit: int, decay: float) -> bool:
        """Whether C{address} has used up its C{limit} (0: no limit)."""
        return limit > 0 and self.level(address, now, decay) >= limit

    def failed(self, address: str, now: float, decay: float) -> float:
        """Count one failure of C{address}; return its level now."""
        level = self.level(address, now, decay) + 1
        self._levels[address] = (level, now)
        if len(self._levels) > self.MAX_ADDRESSES:
            self._shrink(now, decay)
        return level

    def _shrink(self, now: float, decay: float) -> None:
        for address in list(self._levels):
            self.level(address, now, decay)
        excess = len(self._levels) - self.MAX_ADDRESSES // 2
        if excess > 0:
            lowest = sorted(self._levels, key=lambda a: self._levels[a][0])[:excess]
            for address in lowest:
                del self._levels[address]
