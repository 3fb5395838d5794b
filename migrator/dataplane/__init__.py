"""The data plane: what moves and compares items, beside the Lambda package (:mod:`migrator.replicator`).

* :mod:`.stream`: the local stream driver (parents before children, checkpoints per shard);
* :mod:`.replicate`: ``migrator replicate --local``, the driver wired to a migration;
* :mod:`.verify`: verify engines and repair;
* :mod:`.redrive`: fix the keys of the batches the replicator gave up on, from the current source item.
"""
