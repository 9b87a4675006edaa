"""
The Prometheus endpoint of the real daemon (issue 16), scraped over HTTP:
in the multi-process server the master adds up what its login processes,
mail workers and services process counted.
"""

from __future__ import annotations

import imaplib
import smtplib
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e_helpers import Daemon, free_ports, write_config


def _scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.parametrize("single", [False, True], ids=["processes", "single"])
def test_scrape_after_a_session_and_a_delivery(tmp_path, tls_files, single):
    """
    A failed and a good login, SELECT, FETCH, an LMTP delivery: the
    endpoint shows the logins by result, the commands by name with their
    latency, the bytes, the delivery, the sessions, and the open session
    while it is open.
    """
    metrics_port, lmtp_port = free_ports(2)
    config, (port, _tls) = write_config(tmp_path, tls_files, {
        "service": {"single_process": single},
        "lmtp_listen": [f"tcp:{lmtp_port}:interface=127.0.0.1"],
        "metrics": {"listen": [f"tcp:{metrics_port}:interface=127.0.0.1"]},
    })
    daemon = Daemon(["--config", str(config)], tmp_path).start()
    try:
        daemon.wait_for_greeting(port)
        with smtplib.LMTP("127.0.0.1", lmtp_port) as lmtp:
            lmtp.sendmail("bob@example.org", ["alice"], b"Subject: hi\r\n\r\nhello\r\n")
        bad = imaplib.IMAP4("127.0.0.1", port)
        with pytest.raises(imaplib.IMAP4.error):
            bad.login("alice", "wrong")
        bad.logout()
        client = imaplib.IMAP4("127.0.0.1", port)
        client.login("alice", "correct horse battery")
        client.select("INBOX")
        client.fetch("1", "(FLAGS BODY[])")
        deadline = time.monotonic() + 20
        while True:
            samples = _scrape(metrics_port)
            if samples.get(("imapd_commands_total", (("command", "FETCH"), ("status", "ok")))) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert samples[("imapd_sessions", ())] >= 1  # the client still open
        client.logout()
    finally:
        daemon.stop()
    assert samples[("imapd_logins_total", (("result", "ok"),))] == 1
    assert samples[("imapd_logins_total", (("result", "failed"),))] == 1
    assert samples[("imapd_commands_total", (("command", "FETCH"), ("status", "ok")))] == 1
    assert samples[("imapd_commands_total", (("command", "SELECT"), ("status", "ok")))] == 1
    assert samples[("imapd_command_duration_seconds_count", (("command", "SELECT"),))] == 1
    assert samples[("imapd_deliveries_total", (("result", "ok"),))] == 1
    assert samples[("imapd_sessions_total", ())] >= 3  # the greeting probe, two clients
    assert samples[("imapd_received_bytes_total", ())] > 0
    assert samples[("imapd_sent_bytes_total", ())] > 0
