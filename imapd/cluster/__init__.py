"""
Several nodes on one shared store: which node serves which user.

Affinity is an optimisation with a safety net (CLUSTER.md): the store is
safe when two nodes serve one mailbox, so a disagreement costs speed,
never mail.  Every node, MTA lookup and proxy computes the owner as a
pure function of the user and a small host table on the shared store:

    hashing     the Dovecot 2.3 user hash (C{director_username_hash})
    ring        the Dovecot 2.3 director ring of virtual host points
    table       the host table file: hosts, weights, up/down, an epoch
    placement   where users were placed, so they stay while active
    owner       the owner lookup that combines the three
    exports     the table as TSV, JSON, Postfix transport, sendmail QGRP
    socketmap   a Postfix socketmap_table(5) server
    authhttp    an nginx mail auth_http service
"""
