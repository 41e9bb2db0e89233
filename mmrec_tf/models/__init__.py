"""Catalog models; importing this package registers them."""

from mmrec_tf.models.article_lstm import ArticleLSTM
from mmrec_tf.models.din import DIN
from mmrec_tf.models.embedding_mlp import EmbeddingMLP
from mmrec_tf.models.lstm_two_tower import LSTMTwoTower
from mmrec_tf.models.popularity import Popularity
from mmrec_tf.models.ranking_model import RankingModel
from mmrec_tf.models.retrieval_model import RetrievalModel
from mmrec_tf.models.two_tower import TwoTower

__all__ = ["ArticleLSTM", "DIN", "EmbeddingMLP", "LSTMTwoTower", "Popularity", "RankingModel",
           "RetrievalModel", "TwoTower"]
