"""Adam whose embedding-table updates touch only the rows of the batch (lazy Adam)."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mmrec_tf")
class LazyAdam(keras.optimizers.Adam):
    """Adam that updates only the rows an embedding lookup read, for sparse gradients.

    Keras 3's Adam turns the sparse gradient of an embedding lookup
    (``tf.IndexedSlices``) into a dense one and rewrites the whole table and
    both of its moment tables every step, so a step costs time in proportion
    to the number of users and items, not to the batch. ``LazyAdam`` applies
    the Adam rule to the looked-up rows only (duplicate rows' gradients
    summed first) and leaves the other rows and their moments untouched, the
    semantics of TF Addons' ``LazyAdam`` and of TF1's
    ``tf.compat.v1.train.AdamOptimizer`` on sparse gradients (TensorFlow 2.21
    and Keras 3 ship no such optimizer, keras-rs only for TPU SparseCore
    tables, hence this class). Dense gradients (every weight that is not an
    embedding table) get Keras' Adam unchanged. A row's moments then decay
    only on steps that read it. Rows read several times in one batch also
    differ from Keras' Adam on the first step: LazyAdam sums a row's
    gradients before squaring them (the Adam rule on the row's gradient, as
    TF1 and TF Addons do), while Keras' Adam squares the per-lookup slices and
    sums the squares (one step from zero moments with repeated ids: every
    LazyAdam update is ``±learning_rate``, Keras' are not).
    ``benchmarks/lazy_adam.py`` measures speed and HR@10 side by side.

    Example:

    >>> import numpy as np
    >>> table = keras.Variable(np.zeros((4, 2), "float32"))
    >>> optimizer = LazyAdam(learning_rate=0.1)
    >>> optimizer.apply([tf.IndexedSlices(tf.ones([1, 2]), tf.constant([2]), tf.constant([4, 2]))], [table])
    >>> (table.numpy() / 0.1).round().tolist()  # only row 2 moved, by one learning rate
    [[0.0, 0.0], [0.0, 0.0], [-1.0, -1.0], [0.0, 0.0]]
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("LazyAdam does not support amsgrad=True")

    def update_step(self, gradient, variable, learning_rate):
        """Keras' Adam step for dense gradients; the row-wise lazy step for ``tf.IndexedSlices``."""
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = (tf.cast(learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step)))
        rows, position = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), position, tf.shape(rows)[0])
        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index], self._velocities[index]
        # Keras' Adam formulas, in its order of operations, on the rows only
        old_momentum, old_velocity = tf.gather(momentum.value, rows), tf.gather(velocity.value, rows)
        new_momentum = old_momentum + (values - old_momentum) * (1 - beta_1)
        new_velocity = old_velocity + (tf.square(values) - old_velocity) * (1 - beta_2)
        self.assign(momentum, tf.IndexedSlices(new_momentum, rows))
        self.assign(velocity, tf.IndexedSlices(new_velocity, rows))
        self.assign_sub(variable, tf.IndexedSlices(new_momentum * alpha / (tf.sqrt(new_velocity) + self.epsilon),
                                                   rows))
