"""
Fixtures of the end-to-end tests; the helpers they use are in
e2e_helpers.py.  When a test fails, the logs of the daemons it started or
used are attached to its report.
"""

from __future__ import annotations

import pytest

from e2e_helpers import STARTED, Daemon, Server, start_server


@pytest.fixture(autouse=True)
def _track_daemons():
    STARTED.clear()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        daemons = list(STARTED)
        for value in item.funcargs.values():
            daemon = getattr(value, "daemon", None)
            if isinstance(daemon, Daemon) and daemon not in daemons:
                daemons.append(daemon)
        for daemon in daemons:
            report.sections.append((f"{daemon.name} log ({daemon.log_path})", daemon.log()))


@pytest.fixture(scope="module")
def imapd_server(tmp_path_factory, tls_files):
    """A daemon shared by a test module, configured by L{write_config}."""
    server = start_server(tmp_path_factory.mktemp("imapd"), tls_files)
    yield server
    server.daemon.stop()


@pytest.fixture
def start_imapd(tmp_path, tls_files):
    """Start a daemon of one's own: C{start_imapd(settings)} -> L{Server}."""
    servers = []

    def start(settings: dict | None = None) -> Server:
        root = tmp_path / f"server{len(servers)}"
        root.mkdir()
        servers.append(start_server(root, tls_files, settings))
        return servers[-1]

    yield start
    for server in servers:
        server.daemon.stop()
