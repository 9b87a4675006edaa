"""
Prometheus metrics (L{imapd.metrics}): what a process counts, how the
master adds up its children's reports, and the exposition.
"""

from __future__ import annotations

import math

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from imapd import metrics
from imapd.metrics import BUCKETS, Collector, Recorder


def _scrape(recorder: Recorder, sessions: int = 0) -> dict:
    """(sample name, labels) -> value, as a Prometheus server reads them."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(recorder, lambda: sessions))
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_counters_and_histogram_exposed():
    """Counters with labels, the latency histogram (cumulative), the gauge."""
    recorder = Recorder()
    recorder.inc("imapd_logins_total", result="ok")
    recorder.inc("imapd_logins_total", result="failed")
    recorder.inc("imapd_logins_total", result="failed")
    recorder.observe("imapd_command_duration_seconds", 0.003, command="SELECT")
    recorder.observe("imapd_command_duration_seconds", 0.2, command="SELECT")
    samples = _scrape(recorder, sessions=7)
    assert samples[("imapd_sessions", ())] == 7
    assert samples[("imapd_logins_total", (("result", "failed"),))] == 2
    assert samples[("imapd_logins_total", (("result", "ok"),))] == 1
    select = (("command", "SELECT"),)
    assert samples[("imapd_command_duration_seconds_count", select)] == 2
    assert math.isclose(samples[("imapd_command_duration_seconds_sum", select)], 0.203)
    assert samples[("imapd_command_duration_seconds_bucket",
                    (("command", "SELECT"), ("le", "0.005")))] == 1
    assert samples[("imapd_command_duration_seconds_bucket",
                    (("command", "SELECT"), ("le", "+Inf")))] == 2


def test_reports_add_up_in_the_master():
    """
    A child's L{Recorder.take} is what it counted since the last one; the
    master's L{Recorder.merge} adds the reports of every child.
    """
    master, child1, child2 = Recorder(), Recorder(), Recorder()
    child1.inc("imapd_commands_total", command="FETCH", status="ok")
    child1.observe("imapd_command_duration_seconds", 0.01, command="FETCH")
    child2.inc("imapd_commands_total", 3, command="FETCH", status="ok")
    master.merge(child1.take())
    master.merge(child2.take())
    master.merge(child1.take())  # nothing new
    child1.inc("imapd_commands_total", command="FETCH", status="ok")
    master.merge(child1.take())
    counters, histograms = master.snapshot()
    key = ("imapd_commands_total", (("command", "FETCH"), ("status", "ok")))
    assert counters[key] == 5
    row = histograms[("imapd_command_duration_seconds", (("command", "FETCH"),))]
    assert sum(row[:len(BUCKETS)]) == 1
    # A report naming an unknown metric (a newer child) is ignored.
    master.merge({"c": [["nonsense_total", [], 1]], "h": []})
    assert all(name in metrics.METRICS for name, _l in master.snapshot()[0])


def test_commands_logins_and_bytes_counted(authed, monkeypatch):
    """The protocol counts commands by name and status, logins, bytes."""
    recorder = Recorder()
    monkeypatch.setattr(metrics, "RECORDER", recorder)
    authed.ok("a1 SELECT INBOX")
    authed.transact("a2 SELECT NoSuchBox")
    authed.send(b"a3 FROBNICATE\r\n")
    authed.ok("a4 LOGOUT")
    authed.proto.connectionLost(None)
    counters, histograms = recorder.snapshot()
    assert counters[("imapd_commands_total", (("command", "SELECT"), ("status", "ok")))] == 1
    assert counters[("imapd_commands_total", (("command", "SELECT"), ("status", "no")))] == 1
    assert counters[("imapd_store_errors_total", (("error", "MailboxNotFound"),))] == 1
    assert ("imapd_command_duration_seconds", (("command", "SELECT"),)) in histograms
    assert counters[("imapd_received_bytes_total", ())] > 0
    assert counters[("imapd_sent_bytes_total", ())] > 0


def test_failed_login_counted(conv, monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(metrics, "RECORDER", recorder)
    conv.send(b"a1 LOGIN demo wrong\r\n")
    conv.clock.advance(conv.context.limits.failed_login_delay)
    conv.ok("a2 LOGIN demo secret")
    counters, _h = recorder.snapshot()
    assert counters[("imapd_logins_total", (("result", "failed"),))] == 1
    assert counters[("imapd_logins_total", (("result", "ok"),))] == 1


def test_lock_waits_counted(tmp_path, monkeypatch):
    """A lock found held and waited for is counted, with the time slept."""
    from locking import _retry

    recorder = Recorder()
    monkeypatch.setattr(metrics, "RECORDER", recorder)
    monkeypatch.setattr(_retry, "WAIT_OBSERVERS", [])
    metrics.watch_locks()
    backoff = _retry.Backoff(1.0, 0.01, 0.02)
    assert backoff.sleep() and backoff.sleep()
    counters, _h = recorder.snapshot()
    assert counters[("imapd_lock_waits_total", ())] == 2
    assert 0.005 <= counters[("imapd_lock_wait_seconds_total", ())] <= 0.1
