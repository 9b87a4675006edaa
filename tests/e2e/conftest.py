"""
Fixtures of the end-to-end tests.  They live in e2e_helpers.py with the
helpers they use, so that other directories of daemon tests
(tests/security) share them; importing them here registers them.  When a
test fails, the logs of the daemons it started or used are attached to
its report.
"""

from e2e_helpers import (  # noqa: F401 - fixtures and a hook, registered by name
    _track_daemons, imapd_server, pytest_runtest_makereport, start_imapd,
)
from e2e_helpers import start_server  # noqa: F401 - some tests import it from here
