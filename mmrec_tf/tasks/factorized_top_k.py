"""Streaming top-K accuracy of a factorized (two-tower) retrieval model."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops


def _validate_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Returns `ks` as a tuple of distinct positive ints or raises ValueError."""
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Sequence):
        raise ValueError(
            f"FactorizedTopK: `ks` must be a sequence of positive ints, got {ks!r}."
        )
    if not ks:
        raise ValueError("FactorizedTopK: `ks` must not be empty.")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(
                f"FactorizedTopK: every k in `ks` must be a positive int, got {k!r} "
                f"in ks={list(ks)}."
            )
    if len(set(ks)) != len(ks):
        raise ValueError(f"FactorizedTopK: `ks` has repeated values: {list(ks)}.")
    return tuple(ks)


def _check_matrix(tensor, argument: str) -> None:
    """Raises ValueError unless `tensor` has rank 2."""
    if len(tensor.shape) != 2:
        raise ValueError(
            f"FactorizedTopK.update_state: `{argument}` must have shape "
            f"[rows, embedding_dim], got shape {tuple(tensor.shape)}."
        )


@keras.saving.register_keras_serializable(package="mmrec_tf")
class FactorizedTopK(keras.metrics.Metric):
    """Top-K categorical accuracy of the true candidate against a candidate corpus.

    For each query the true candidate's score (dot product) is compared with
    the scores of all `N` corpus candidates. The query counts as a hit at `k`
    when fewer than `k` corpus candidates score strictly higher than the true
    candidate, i.e. its score is >= the k-th highest corpus score. Ties count
    as hits and with `N < k` every query is a hit. This is the score-based
    evaluation of `tfrs.metrics.FactorizedTopK` (TensorFlow Recommenders 0.7,
    which feeds `[positive, top-K scores]` to `tf.math.in_top_k`).

    Unlike TFRS, the true candidates are scored in the same matrix product as
    the corpus. Scoring them with an element-wise sum instead (as TFRS does)
    differs from the matrix-product score of the same item by a rounding error
    in roughly 4 of 10 rows on a CPU, so a true candidate that is itself the
    best corpus item would miss at k=1 whenever its corpus copy rounds up.

    A query whose true-candidate score is not finite counts as a miss.
    `result()` is a dict `{"top_{k}_categorical_accuracy": weighted mean}`,
    which Keras 3 `fit`/`evaluate` flatten into their logs.

    Args:
        ks: Cut-offs `k` at which accuracy is reported; distinct positive ints.
        name: Metric name.
        dtype: Dtype of the metric state; defaults to float32.

    Example:

    >>> import numpy as np
    >>> metric = FactorizedTopK(ks=(1, 2))
    >>> corpus = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], "float32")
    >>> queries = np.array([[1.0, 0.0], [1.0, 0.0]], "float32")
    >>> true_candidates = corpus[[0, 2]]  # scores 1.0 (best) and 0.5 (2nd)
    >>> metric.update_state(queries, true_candidates, corpus)
    >>> {k: float(v) for k, v in metric.result().items()}
    {'top_1_categorical_accuracy': 0.5, 'top_2_categorical_accuracy': 1.0}
    """

    def __init__(
        self,
        ks: Sequence[int] = (1, 5, 10, 50, 100),
        name: str = "factorized_top_k",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self.ks = _validate_ks(ks)
        self.hit_totals = self.add_variable(
            shape=(len(self.ks),), initializer="zeros", name="hit_totals"
        )
        self.weight_total = self.add_variable(
            shape=(), initializer="zeros", name="weight_total"
        )

    def update_state(
        self,
        query_embeddings,
        true_candidate_embeddings,
        candidate_embeddings,
        sample_weight=None,
    ) -> None:
        """Accumulates hits for a batch of queries.

        Args:
            query_embeddings: `[B, D]` query embeddings.
            true_candidate_embeddings: `[B, D]` embedding of each query's true
                candidate (row `i` belongs to query `i`).
            candidate_embeddings: `[N, D]` embeddings of the candidate corpus.
            sample_weight: Optional `[B]` weight per query; defaults to 1.
        """
        queries = ops.cast(query_embeddings, "float32")
        true_candidates = ops.cast(true_candidate_embeddings, "float32")
        candidates = ops.cast(candidate_embeddings, "float32")
        _check_matrix(queries, "query_embeddings")
        _check_matrix(true_candidates, "true_candidate_embeddings")
        _check_matrix(candidates, "candidate_embeddings")
        dims = {queries.shape[1], true_candidates.shape[1], candidates.shape[1]}
        if len(dims - {None}) > 1:
            raise ValueError(
                "FactorizedTopK.update_state: embedding sizes differ: "
                f"query_embeddings {tuple(queries.shape)}, true_candidate_embeddings "
                f"{tuple(true_candidates.shape)}, candidate_embeddings "
                f"{tuple(candidates.shape)}."
            )
        num_queries = ops.shape(queries)[0]
        num_candidates = ops.shape(candidates)[0]
        scores = ops.matmul(
            queries, ops.transpose(ops.concatenate([true_candidates, candidates], 0))
        )
        positive_scores = ops.diagonal(scores)
        corpus_scores = ops.slice(
            scores, [0, num_queries], [num_queries, num_candidates]
        )
        num_higher = ops.sum(
            ops.cast(
                ops.greater(corpus_scores, ops.expand_dims(positive_scores, 1)),
                "int32",
            ),
            axis=1,
        )
        ks = ops.convert_to_tensor(self.ks, dtype="int32")
        hits = ops.logical_and(
            ops.less(ops.expand_dims(num_higher, 1), ops.expand_dims(ks, 0)),
            ops.expand_dims(ops.isfinite(positive_scores), 1),
        )
        if sample_weight is None:
            weights = ops.ones((num_queries,), dtype=self.dtype)
        else:
            weights = ops.reshape(ops.cast(sample_weight, self.dtype), (-1,))
        hits = ops.cast(hits, self.dtype) * ops.expand_dims(weights, 1)
        self.hit_totals.assign_add(ops.sum(hits, axis=0))
        self.weight_total.assign_add(ops.sum(weights))

    def result(self) -> dict:
        """Returns `{"top_{k}_categorical_accuracy": accuracy}` for every k."""
        return {
            f"top_{k}_categorical_accuracy": ops.divide_no_nan(
                self.hit_totals[i], self.weight_total
            )
            for i, k in enumerate(self.ks)
        }

    def get_config(self) -> dict:
        """Returns the constructor arguments."""
        return {"ks": list(self.ks), "name": self.name, "dtype": self.dtype}
