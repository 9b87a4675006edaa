# -*- test-case-name: tests.imapd.test_metrics -*-
"""
Prometheus metrics (issue 16), served on C{[metrics] listen} in the text
exposition format through the optional C{prometheus-client} package
(C{pip install imapd[metrics]}).

Every process counts into its own L{Recorder} (L{RECORDER}); nothing
here touches the network or a file while a command runs.  In the
multi-process server each child sends what it counted since its last
report to the master every L{FLUSH_INTERVAL} seconds over its control
channel (C{{"op": "metrics"}}), and the master, which serves the
endpoint, adds it up: the numbers survive a child's restart and a
reload, and login processes in a chroot or mail workers running as a
user need no shared directory (prometheus-client's own multi-process
mode needs one every process can write).

    imapd_sessions                      open connections (gauge)
    imapd_sessions_total                connections accepted
    imapd_logins_total{result}          LOGIN/AUTHENTICATE: ok, failed
    imapd_commands_total{command,status}
    imapd_command_duration_seconds{command}   histogram
    imapd_received_bytes_total, imapd_sent_bytes_total
    imapd_deliveries_total{result}      LMTP: ok, temporary, permanent
    imapd_store_errors_total{error}     storage.errors class names
    imapd_lock_waits_total, imapd_lock_wait_seconds_total
                                        a lock found held, and the time
                                        slept waiting for it (locking/)
"""

from __future__ import annotations

import math
import threading
from typing import Callable, Optional

__all__ = ["Recorder", "RECORDER", "Collector", "metrics_resource", "start_reporting",
           "watch_locks", "FLUSH_INTERVAL", "BUCKETS"]

#: Seconds between two reports of a child to the master.
FLUSH_INTERVAL = 2.0

#: Upper bounds of the command latency histogram, in seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
           math.inf)

#: name -> (type, help) of every metric; labels come with the samples.
METRICS = {
    "imapd_sessions_total": ("counter", "Connections accepted."),
    "imapd_logins_total": ("counter", "Logins by result (ok, failed)."),
    "imapd_commands_total": ("counter", "IMAP commands by name and status (ok, no, bad)."),
    "imapd_command_duration_seconds": ("histogram", "IMAP command latency by name."),
    "imapd_received_bytes_total": ("counter", "Bytes received from clients."),
    "imapd_sent_bytes_total": ("counter", "Bytes sent to clients."),
    "imapd_deliveries_total": ("counter", "LMTP deliveries by result (ok, temporary, permanent)."),
    "imapd_store_errors_total": ("counter", "Mail store errors by kind."),
    "imapd_lock_waits_total": ("counter", "Locks found held and waited for."),
    "imapd_lock_wait_seconds_total": ("counter", "Seconds spent waiting for held locks."),
}


def _key(labels: dict) -> tuple:
    return tuple(sorted(labels.items()))


class Recorder:
    """
    One process's counts: counters and histograms, keyed by metric name
    and labels.  Thread-safe (locks are waited for in the storage pool's
    threads).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple, float] = {}
        #: (name, labels) -> [count per bucket (not cumulative)..., sum]
        self.histograms: dict[tuple, list] = {}

    def inc(self, name: str, amount: float = 1.0, **labels) -> None:
        key = (name, _key(labels))
        with self._lock:
            self.counters[key] = self.counters.get(key, 0.0) + amount

    def observe(self, name: str, value: float, **labels) -> None:
        key = (name, _key(labels))
        with self._lock:
            row = self.histograms.get(key)
            if row is None:
                row = self.histograms[key] = [0] * len(BUCKETS) + [0.0]
            for i, bound in enumerate(BUCKETS):
                if value <= bound:
                    row[i] += 1
                    break
            row[-1] += value

    def take(self) -> dict:
        """What was counted since the last call (JSON-able), and forget it."""
        with self._lock:
            counters, self.counters = self.counters, {}
            histograms, self.histograms = self.histograms, {}
        return {"c": [[n, list(map(list, l)), v] for (n, l), v in counters.items()],
                "h": [[n, list(map(list, l)), row] for (n, l), row in histograms.items()]}

    def merge(self, report: dict) -> None:
        """Add a child's L{take} (in the master)."""
        with self._lock:
            for name, labels, value in report.get("c", ()):
                if name not in METRICS:
                    continue
                key = (name, tuple(tuple(p) for p in labels))
                self.counters[key] = self.counters.get(key, 0.0) + float(value)
            for name, labels, row in report.get("h", ()):
                if name not in METRICS or len(row) != len(BUCKETS) + 1:
                    continue
                key = (name, tuple(tuple(p) for p in labels))
                mine = self.histograms.setdefault(key, [0] * len(BUCKETS) + [0.0])
                for i, value in enumerate(row):
                    mine[i] += value

    def snapshot(self) -> tuple[dict, dict]:
        with self._lock:
            return dict(self.counters), {k: list(v) for k, v in self.histograms.items()}


#: This process's recorder.
RECORDER = Recorder()


class Collector:
    """
    A prometheus-client collector over a L{Recorder} (the master's sum,
    or the single process's own), plus the open-sessions gauge.

    @param sessions: returns the number of open connections.
    """

    def __init__(self, recorder: Recorder, sessions: Callable[[], int]) -> None:
        self.recorder = recorder
        self.sessions = sessions

    def collect(self):
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        yield GaugeMetricFamily("imapd_sessions", "Open connections.", value=self.sessions())
        counters, histograms = self.recorder.snapshot()
        families, names = {}, {}
        for name, (kind, text) in METRICS.items():
            if kind == "counter":
                names[name] = sorted({k for (n, lab) in counters if n == name for k, _v in lab})
                families[name] = CounterMetricFamily(name[: -len("_total")], text,
                                                     labels=names[name])
            else:
                families[name] = HistogramMetricFamily(name, text, labels=["command"])
        for (name, labels), value in sorted(counters.items()):
            wanted = dict(labels)
            families[name].add_metric([wanted.get(k, "") for k in names[name]], value)
        for (name, labels), row in sorted(histograms.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(BUCKETS, row):
                cumulative += count
                buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
            families[name].add_metric([dict(labels).get("command", "")], buckets, row[-1])
        yield from families.values()


def metrics_resource(recorder: Recorder, sessions: Callable[[], int]):
    """A twisted.web resource serving the metrics at any path (GET)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from twisted.web.resource import Resource

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(recorder, sessions))

    class Metrics(Resource):
        isLeaf = True

        def render_GET(self, request):
            request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
            return generate_latest(registry)

    return Metrics()


def start_reporting(reactor, send: Callable[[dict], None],
                    interval: float = FLUSH_INTERVAL):
    """
    In a child: send what L{RECORDER} counted to the master every
    C{interval} seconds (nothing when nothing happened).
    """
    from twisted.internet import task

    def report() -> None:
        taken = RECORDER.take()
        if taken["c"] or taken["h"]:
            send({"op": "metrics", "d": taken})

    loop = task.LoopingCall(report)
    loop.clock = reactor
    loop.start(interval, now=False)
    return loop


def watch_locks() -> None:
    """Count lock waits (L{locking._retry.Backoff.sleep}) into L{RECORDER}."""
    from locking import _retry

    def waited(seconds: float) -> None:
        RECORDER.inc("imapd_lock_waits_total")
        RECORDER.inc("imapd_lock_wait_seconds_total", seconds)

    _retry.WAIT_OBSERVERS[:] = [waited]


def command_done(command: str, status: str, seconds: float) -> None:
    """An IMAP command answered (L{imapd.protocol})."""
    RECORDER.inc("imapd_commands_total", command=command, status=status)
    RECORDER.observe("imapd_command_duration_seconds", seconds, command=command)


def session_bytes(received: int, sent: int) -> None:
    """A connection ended, having moved these many bytes (in this process)."""
    if received:
        RECORDER.inc("imapd_received_bytes_total", received)
    if sent:
        RECORDER.inc("imapd_sent_bytes_total", sent)


def store_error(error: BaseException) -> None:
    """A mail store error reached a command or a login."""
    RECORDER.inc("imapd_store_errors_total", error=type(error).__name__)


def login(ok: bool) -> None:
    RECORDER.inc("imapd_logins_total", result="ok" if ok else "failed")


def missing_client() -> Optional[str]:
    """Why the endpoint cannot be served, or None."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return ("needs the prometheus-client package (pip install 'imapd[metrics]' or "
                "pip install prometheus-client)")
    return None
