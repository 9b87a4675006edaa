"""Tests of the imapd-admin areas of imapd.adminops."""
