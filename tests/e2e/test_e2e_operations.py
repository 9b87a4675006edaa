"""
The daemon as a new sysadmin runs it (issue 16 "Defects found as a new
user"): the greeting, daemon mode, bad listeners, IPv6, the log.
"""

from __future__ import annotations

from e2e_helpers import Daemon, write_config


def test_hostname_option_in_greeting(tmp_path, tls_files):
    """
    Issue 16 item 3: --hostname changes the greeting, as --help says,
    over the configuration file's hostname.
    """
    config, (port, _tls_port) = write_config(tmp_path, tls_files)
    daemon = Daemon(["--config", str(config), "--hostname", "mail.example.org"], tmp_path).start()
    try:
        greeting = daemon.wait_for_greeting(port)
    finally:
        daemon.stop()
    assert greeting.startswith(b"* OK [CAPABILITY ")
    assert greeting.rstrip().endswith(b"] mail.example.org imapd ready."), greeting
