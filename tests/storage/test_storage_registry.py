# -*- test-case-name: tests.storage.test_storage_registry -*-
"""Tests for L{storage.registry}."""

from __future__ import annotations

import os

import pytest
from zope.interface.verify import verifyObject

from storage.errors import StoreError
from storage.interfaces import IStore
from storage.registry import STORES, open_store


def test_maildir_created_on_first_use(tmp_path):
    """The root Maildir is created, mode 0700, and the store works."""
    store = open_store("maildir:~/Maildir", "joe", str(tmp_path))
    verifyObject(IStore, store)
    root = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        assert (root / sub).is_dir()
    assert os.stat(root).st_mode & 0o777 == 0o700
    assert store.user == "joe"
    assert [m.name for m in store.list_mailboxes()] == ["INBOX"]


def test_index_dir(tmp_path):
    """The index directory comes from the argument, else from INDEX=."""
    store = open_store(f"maildir:{tmp_path}/%u:INDEX=/idx/%u", "joe", None)
    assert store.index_dir == "/idx/joe"
    store = open_store(f"maildir:{tmp_path}/%u:INDEX=/idx/%u", "joe", None, "/other")
    assert store.index_dir == "/other"


def test_mbox_not_yet(tmp_path):
    """mbox locations parse, but say clearly that the store is not there yet."""
    assert "mbox" not in STORES
    with pytest.raises(StoreError, match="'mbox' mail store is not implemented yet"):
        open_store("mbox:~/mail:INBOX=/var/mail/%u", "joe", str(tmp_path))


def test_relative_root_refused(tmp_path):
    """A relative mail root is refused."""
    with pytest.raises(StoreError, match="absolute"):
        open_store("maildir:Maildir", "joe", None)
