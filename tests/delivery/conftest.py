"""
Fixtures of the delivery tests: users in a passwd-file, a real store of
each kind (parametrized: Maildir and mbox), a L{Deliverer} over them, an
LMTP connection over a L{StringTransport} with a fake clock, and the
daemon fixtures of the end-to-end tests (tests/e2e/e2e_helpers.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from twisted.internet import task

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import (  # noqa: E402,F401 - fixtures and a hook, registered by name
    _track_daemons, pytest_runtest_makereport, start_imapd,
)

from imapd.delivery.lmtp import LMTPFactory, LMTPSettings  # noqa: E402
from tests.delivery.delivery_helpers import LMTPClient, make_deliverer, write_passwd  # noqa: E402

STORES = ["maildir", "mbox"]


@pytest.fixture(params=STORES)
def store_kind(request):
    return request.param


@pytest.fixture
def passwd_file(tmp_path):
    return write_passwd(tmp_path / "passwd", tmp_path)


@pytest.fixture
def location(tmp_path, store_kind):
    return f"{store_kind}:{tmp_path}/mail/%u"


@pytest.fixture
def deliverer(location, passwd_file, tmp_path):
    return make_deliverer(location, passwd_file, tmp_path)


@pytest.fixture
def clock():
    return task.Clock()


@pytest.fixture
def make_lmtp(deliverer, clock):
    """C{make_lmtp(**settings)} -> a connected L{LMTPClient} (greeting read)."""

    def make(deliverer=deliverer, **settings) -> LMTPClient:
        factory = LMTPFactory(deliverer, LMTPSettings(**settings), clock, None, "lmtp.test")
        client = LMTPClient(factory)
        assert client.lines() == ["220 lmtp.test LMTP ready"]
        return client
    return make
