"""Recommendation tasks (loss + metrics) with TensorFlow Recommenders semantics."""

from mmrec_tf.tasks.factorized_top_k import FactorizedTopK
from mmrec_tf.tasks.ranking import Ranking
from mmrec_tf.tasks.retrieval import Retrieval

__all__ = ["FactorizedTopK", "Ranking", "Retrieval"]
