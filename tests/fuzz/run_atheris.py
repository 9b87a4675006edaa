#!/usr/bin/env python3
# -*- test-case-name: tests.fuzz.test_fuzz_targets -*-
"""
The long, coverage-guided fuzz run (atheris, libFuzzer's engine): one
target of L{fuzz_targets} per run, its seeds as the starting corpus, the
imapd/storage modules instrumented for edge coverage.  Not part of the
test suite; run it yourself:

    /work/venv/bin/pip install atheris
    /work/venv/bin/python tests/fuzz/run_atheris.py mbox -runs=1000000
    /work/venv/bin/python tests/fuzz/run_atheris.py parser -max_total_time=600

Any libFuzzer option works (-runs, -max_total_time, -max_len, -jobs).
libFuzzer prints C{cov:} (edges covered) and C{exec/s} as it goes; a crash
or a failed check stops it and writes the input to C{crash-*}, which
C{run_atheris.py TARGET crash-FILE} replays.  The working corpus goes to
C{$FUZZ_CORPUS/TARGET} (default: .fuzz-corpus/TARGET, ignored by git).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main(argv: list[str]) -> None:
    import atheris

    if len(argv) < 2 or argv[1] not in _target_names():
        sys.exit(f"usage: {argv[0]} {{{','.join(_target_names())}}} [libFuzzer options]")
    name = argv[1]
    sys.path[:0] = [ROOT, HERE]
    with atheris.instrument_imports(include=["imapd", "storage", "test_message_fuzz"]):
        import fuzz_targets
        # Import what each target imports lazily, inside the instrumentation.
        import imapd.auth.sasl  # noqa: F401
        import imapd.charset  # noqa: F401
        import imapd.message  # noqa: F401
        import imapd.parser  # noqa: F401
        import storage.mbox.rewrite  # noqa: F401
        import storage.mbox.state  # noqa: F401
        import test_message_fuzz  # noqa: F401
    target = fuzz_targets.TARGETS[name]
    corpus = os.path.join(os.environ.get("FUZZ_CORPUS", os.path.join(ROOT, ".fuzz-corpus")),
                          name)
    os.makedirs(corpus, exist_ok=True)
    for i, seed in enumerate(fuzz_targets.SEEDS[name]):
        path = os.path.join(corpus, f"seed-{i}")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(seed)
    args = [argv[0]] + argv[2:]
    if not any(not a.startswith("-") for a in argv[2:]):
        args.append(corpus)
    atheris.Setup(args, target)
    atheris.Fuzz()


def _target_names() -> list[str]:
    return ["charset", "mbox", "message", "parser", "sasl"]


if __name__ == "__main__":
    main(sys.argv)
