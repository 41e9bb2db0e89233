"""Offline evaluation: full-ranking retrieval metrics, pointwise ranking metrics (AUC, GAUC), cold-start items,
beyond-accuracy metrics of top-K lists and group fairness."""

from mmrec_tf.evaluation import beyond_accuracy, fairness
from mmrec_tf.evaluation.cold_start import ColdStartReport, evaluate_cold_start
from mmrec_tf.evaluation.full_ranking import RetrievalReport, evaluate_retrieval
from mmrec_tf.evaluation.ranking_evaluator import PointwiseReport, evaluate_ranking
from mmrec_tf.evaluation.ranking_metrics import auc, gauc, log_loss, rmse
from mmrec_tf.evaluation.recommendation_lists import RecommendationLists, beyond_accuracy_metrics, recommend

__all__ = ["ColdStartReport", "PointwiseReport", "RecommendationLists", "RetrievalReport", "auc",
           "beyond_accuracy", "beyond_accuracy_metrics", "evaluate_cold_start", "evaluate_ranking",
           "evaluate_retrieval", "fairness", "gauc", "log_loss", "recommend", "rmse"]
