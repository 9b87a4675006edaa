"""
The [quota] and [mailboxes] options through the real daemon: a mistake
stops start-up naming option and file; the limits and the special-use
mailboxes reach every session.
"""

from __future__ import annotations

import imaplib

from e2e_helpers import PASSWORD, USER, Daemon, run_twistd, write_config


def test_unknown_special_use_attribute_stops_startup(tmp_path, tls_files):
    """An unknown RFC 6154 attribute is a start-up error naming the file and the option."""
    config, _ = write_config(tmp_path, tls_files)
    with open(config, "a") as f:
        f.write('\n[mailboxes.special_use]\nSent = "\\\\Outbox"\n')
    result = run_twistd(["--config", str(config)], cwd=tmp_path)
    assert result.returncode != 0
    assert (f"imapd: {config}: option 'mailboxes.special_use': mailbox 'Sent': "
            "unknown special-use attribute \"\\Outbox\"") in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_configured_quota_and_special_use(tmp_path, tls_files):
    """Limits from [quota] answer GETQUOTA and refuse APPEND; [mailboxes] names and creates."""
    config, (port, _tls_port) = write_config(tmp_path, tls_files, {
        "quota": {"storage": "1M", "messages": 2},
        "mailboxes": {"auto_create": ["Gesendet"]},
    })
    with open(config, "a") as f:
        f.write('\n[mailboxes.special_use]\nGesendet = "Sent"\n')
    daemon = Daemon(["--config", str(config)], tmp_path).start()
    try:
        daemon.wait_for_greeting(port)
        with imaplib.IMAP4("127.0.0.1", port) as imap:
            imap.login(USER, PASSWORD)
            caps = imap.capability()[1][0].decode().split()
            assert {"QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"} <= set(caps)
            msg = b"Subject: q\r\n\r\n" + b"x" * 2000 + b"\r\n"
            assert imap.append("INBOX", None, None, msg)[0] == "OK"
            assert imap.append("INBOX", None, None, msg)[0] == "OK"
            typ, data = imap.append("INBOX", None, None, msg)
            assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
            typ, data = imap._simple_command("GETQUOTAROOT", "INBOX")
            assert typ == "OK", data
            assert imap.untagged_responses.pop("QUOTAROOT") == [b'INBOX ""']
            assert imap.untagged_responses.pop("QUOTA") == [b'"" (STORAGE 4 1024 MESSAGE 2 2)']
            typ, data = imap.list('""', "*")
            assert typ == "OK"
            assert b'(\\HasNoChildren \\Sent) "/" Gesendet' in data, data
    finally:
        daemon.stop()
