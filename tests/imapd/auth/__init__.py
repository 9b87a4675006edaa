# -*- test-case-name: tests.imapd.auth -*-
"""
Tests for L{imapd.auth}.
"""
