"""
imapd: an IMAP4rev1 server on Twisted for Maildir and mbox mail on shared
(NFS) storage.  The protocol layer lives here; see DESIGN.md for the map.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
