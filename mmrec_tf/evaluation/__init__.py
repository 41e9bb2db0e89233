"""Offline evaluation: full-ranking retrieval metrics, pointwise ranking metrics (AUC, GAUC), cold-start items."""

from mmrec_tf.evaluation.cold_start import ColdStartReport, evaluate_cold_start
from mmrec_tf.evaluation.full_ranking import RankingReport, evaluate_retrieval
from mmrec_tf.evaluation.ranking_evaluator import PointwiseReport, evaluate_ranking, ranking_report
from mmrec_tf.evaluation.ranking_metrics import auc, gauc, log_loss, rmse

__all__ = ["ColdStartReport", "PointwiseReport", "RankingReport", "auc", "evaluate_cold_start", "evaluate_ranking",
           "evaluate_retrieval", "gauc", "log_loss", "ranking_report", "rmse"]
