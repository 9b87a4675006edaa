"""
The concurrent-client stress test (L{tests.stress.stress}) against our
daemon, as CI runs it: 10 clients on 50 accounts for
C{IMAPD_STRESS_SECONDS} (default L{stress.SECONDS}) in all, half on each
store; every
rule the clients check from the outside must hold, and no command that
should succeed may fail.  The same load runs against Dovecot from the
command line (C{python -m tests.stress.stress}).
"""

from __future__ import annotations

import os

import pytest

from tests.stress import stress
from tests.differential.servers import our_server

SECONDS = float(os.environ.get("IMAPD_STRESS_SECONDS", stress.SECONDS))


@pytest.mark.parametrize("store", ["maildir", "mbox"])
def test_concurrent_clients_keep_the_rules(tmp_path, tls_files, store):
    """Concurrent sessions on shared accounts: no rule broken, no command failed."""
    users = {stress.account(i): stress.PASSWORD for i in range(stress.ACCOUNTS)}
    with our_server(tmp_path, store, users, tls_files) as (host, port):
        stress.populate(host, port)
        result = stress.run(host, port, SECONDS / 2)
    print(result.summary(f"ours ({store})"))
    assert result.commands > 0 and result.logins > 0
    assert not result.errors, result.summary(store) + "".join(
        f"\n  e.g. {kind}: {text}" for kind, text in sorted(result.examples.items()))
