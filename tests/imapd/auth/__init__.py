"""
Tests for L{imapd.auth}.
"""
