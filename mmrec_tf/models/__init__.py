"""Catalog models; importing this package registers them."""

from mmrec_tf.models.lstm_two_tower import LSTMTwoTower
from mmrec_tf.models.popularity import Popularity
from mmrec_tf.models.retrieval_model import RetrievalModel
from mmrec_tf.models.two_tower import TwoTower

__all__ = ["LSTMTwoTower", "Popularity", "RetrievalModel", "TwoTower"]
