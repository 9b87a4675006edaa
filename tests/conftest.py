"""
Fixtures shared by every test directory.  Keep this file small: fixtures
used by one directory belong in that directory's conftest.py.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """
    A self-signed certificate for C{localhost}, made once per test session:
    C{(cert_path, key_path)} as PEM files.
    """
    from imapd.tls import generate_self_signed

    directory = tmp_path_factory.mktemp("tls")
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    generate_self_signed(cert, key, "localhost")
    return cert, key
