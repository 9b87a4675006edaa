# -*- test-case-name: tests.imapd.auth -*-
"""
Load the Dovecot password vectors from C{../shared/testdata} for the auth
tests (read-only: the file is never modified, so it is read in place).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

#: C{doveadm pw} output of Dovecot 2.3.19; see the testdata README.
VECTORS_PATH = Path(__file__).resolve().parents[4] / "shared" / "testdata" / "doveadm-pw-vectors.tsv"


class Vector(NamedTuple):
    """
    One line of the vectors file.
    """

    scheme: str
    password: str
    stored: str


def load_vectors() -> list[Vector]:
    """
    Read every vector; comment and blank lines are skipped.

    @return: the vectors in file order.
    """
    vectors = []
    for line in VECTORS_PATH.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        scheme, password, stored = line.split("\t")
        vectors.append(Vector(scheme, password, stored))
    return vectors


def vector_id(vector: Vector) -> str:
    """
    A readable pytest id: scheme and password.
    """
    return f"{vector.scheme}-{vector.password}"
