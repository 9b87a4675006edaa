"""
The server's processes (issue 14): a master that binds the listeners and
supervises, login processes that speak IMAP until a user has logged in,
and mail workers that serve logged-in users (a pool under the server's
uid for virtual users, one process per system user under that user's
uid).  C{[service] single_process} keeps everything in one process.
"""
