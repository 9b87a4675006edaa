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


def test_mbox_opens(tmp_path):
    """An mbox location opens an mbox store with INBOX where INBOX= says."""
    inbox = tmp_path / "spool" / "joe"
    inbox.parent.mkdir()
    store = open_store(f"mbox:{tmp_path}/mail:INBOX={inbox}", "joe", str(tmp_path))
    assert "mbox" in STORES
    assert "INBOX" in {i.name for i in store.list_mailboxes()}
    store.close()


def test_unknown_driver_is_refused(tmp_path):
    """A driver nobody registered is a clear StoreError naming what exists."""
    with pytest.raises(StoreError, match="not implemented yet .*maildir, mbox"):
        open_store(f"sdbox:{tmp_path}/x", "joe", str(tmp_path))

def test_relative_root_refused(tmp_path):
    """A relative mail root is refused."""
    with pytest.raises(StoreError, match="absolute"):
        open_store("maildir:Maildir", "joe", None)


@pytest.mark.parametrize("driver", ["maildir", "mbox"])
def test_existing_only_creates_nothing(tmp_path, driver):
    """existing=True (a reader of another user's mail): a missing root is an error, not made."""
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"{driver}:{tmp_path}/joe", "joe", None, existing=True)
    assert not (tmp_path / "joe").exists()
    open_store(f"{driver}:{tmp_path}/joe", "joe", None).close()
    open_store(f"{driver}:{tmp_path}/joe", "joe", None, existing=True).close()


def test_existing_mbox_root_falls_back_to_Mail(tmp_path):
    """An mbox ~/mail that is missing while ~/Mail exists counts as existing, as a login uses it."""
    (tmp_path / "Mail").mkdir()
    store = open_store("mbox:~/mail", "joe", str(tmp_path), existing=True)
    store.close()
    assert not (tmp_path / "mail").exists()
