"""
The per-node local index: a cache of UIDs, flags and parsed message data on
local disk (DESIGN.md rule 2).

Not built yet (issue "index/"): the stores keep what they need in memory per
process and read the shared store itself for everything else.  This package
will import nothing from C{storage} or C{imapd} (STYLE.md item 9).
"""

__all__: list[str] = []
