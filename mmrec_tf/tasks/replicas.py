"""How a replica's share of a batch-level loss term is scaled under ``tf.distribute``."""

from __future__ import annotations

import tensorflow as tf
from keras import ops


def replica_share(value):
    """``value / num_replicas_in_sync`` of the current ``tf.distribute`` strategy (``value`` without one).

    Keras sums the gradients of the replicas, so a loss term that each
    replica computes for the whole batch (an average over its own examples,
    a regularization penalty) must be divided by the number of replicas for
    N replicas to take the step one device takes on the global batch — the
    convention of Keras' own ``sum_over_batch_size`` losses and additional
    losses. Terms that are sums over examples need no scaling: the replicas'
    sums add up to the global sum.

    Example:
    >>> float(replica_share(6.0))  # no strategy: one replica
    6.0
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    value = ops.convert_to_tensor(value)
    if replicas == 1:
        return value
    return value * ops.cast(1.0 / replicas, value.dtype)
