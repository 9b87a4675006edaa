# -*- test-case-name: tests.fuzz.test_fuzz_targets -*-
"""
The short fuzz run of CI: each target of L{fuzz_targets} gets a few
seconds of Hypothesis inputs (random bytes, and the seeds mutated by
byte-level edits).  The long coverage-guided run is run_atheris.py.
"""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fuzz_targets import SEEDS, TARGETS  # noqa: E402

#: Inputs per target in CI; FUZZ_EXAMPLES raises it for a longer local run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))

_SPECIAL = [b"\r\n", b"\n", b"\r", b"\x00", b"\x0b", b"\x0c", b"\x7f", b"\xff", b":", b" ",
            b"From ", b">From ", b"X-UID", b"Status", b"Content-Length", b"{3+}\r\n",
            b"=?", b"?=", b"--xx", b"(", b")", b'"', b"\\"]


@st.composite
def _mutated(draw, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(data)))
        op = draw(st.integers(0, 3))
        if op == 0:
            data[i:i] = draw(st.sampled_from(_SPECIAL))
        elif op == 1:
            del data[i:i + draw(st.integers(1, 8))]
        elif op == 2:
            data[i:i] = draw(st.binary(max_size=8))
        else:
            j = draw(st.integers(0, len(data)))
            data[i:i] = data[min(i, j):max(i, j)][:40]
    return bytes(data)


def _inputs(name: str):
    return st.one_of(st.binary(max_size=512), _mutated(SEEDS[name]))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target(name):
    """Random and mutated inputs never break the target's contract (see fuzz_targets)."""
    target = TARGETS[name]

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_inputs(name))
    def run(data):
        target(data)
    run()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_pass(name):
    """The seeds themselves satisfy each target (the fuzzers start from them)."""
    for seed in SEEDS[name]:
        TARGETS[name](seed)
