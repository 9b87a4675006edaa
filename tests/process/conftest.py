"""
Fixtures of the multi-process tests (issue 14): the daemon fixtures of
the end-to-end tests (tests/e2e/e2e_helpers.py), shared, not copied.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_helpers import (  # noqa: E402,F401 - fixtures and a hook, registered by name
    _track_daemons, pytest_runtest_makereport,
)
