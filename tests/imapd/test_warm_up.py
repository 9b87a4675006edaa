"""The daemon's preparation before it serves (L{imapd.tap.warm_up})."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from imapd import tap

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gc_state():
    """Restore the collector's settings and unfreeze after the test."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_warm_up_imports_handlers_modules_and_tunes_gc():
    """
    In a fresh interpreter (so that no other test imported them first),
    the modules are missing before and present after, and the collector
    is tuned and has the start-up objects frozen.
    """
    script = (
        "import gc, sys\n"
        "from imapd import tap\n"
        "before = [m for m in tap.WARM_MODULES if m in sys.modules]\n"
        "tap.warm_up()\n"
        "after = [m for m in tap.WARM_MODULES if m not in sys.modules]\n"
        "print(before, after, gc.get_threshold() == tap.GC_THRESHOLD, gc.get_freeze_count() > 1000)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split("\n")[0]
    assert out == "[] [] True True"


def test_service_start_warms_up(gc_state, monkeypatch):
    calls = []
    monkeypatch.setattr(tap, "warm_up", lambda: calls.append(True))
    service = tap.IMAPService("info")
    service.startService()
    try:
        assert calls == [True]
    finally:
        service.stopService()


def test_storage_options_reach_the_pool(tmp_path):
    """
    [storage] threads_per_mailbox and stuck_after configure the pool's
    shares (the single process's service tree; a mail worker builds its
    pool from the same options, imapd.process.worker).
    """
    import textwrap

    from conf import load_config

    path = tmp_path / "imapd.toml"
    path.write_text(textwrap.dedent(f"""
        listen = ["tcp:0:interface=127.0.0.1"]
        data_dir = "{tmp_path / 'data'}"
        [tls]
        enabled = false
        [mail]
        location = "maildir:{tmp_path / 'mail'}/%u"
        [service]
        single_process = true
        [storage]
        threads = 6
        threads_per_mailbox = 2
        stuck_after = 3.5
    """))
    options = tap.Options()
    options.config = load_config(str(path), {})
    top = tap.makeService(options)
    pools = [s.pool for s in top if isinstance(s, tap.ThreadPoolService)]
    assert [(p.threads, p.per_key, p.stuck_after) for p in pools] == [(6, 2, 3.5)]
