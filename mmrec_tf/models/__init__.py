"""Catalog models; importing this package registers them.

``registered_model`` imported from here sees every built-in model (the
imports above it have registered them).
"""

from mmrec_tf.model_registration import registered_model

from mmrec_tf.models.article_lstm import ArticleLSTM
from mmrec_tf.models.bst import BST
from mmrec_tf.models.concat_fusion import ConcatFusion
from mmrec_tf.models.content_only import ContentOnly
from mmrec_tf.models.cross_attention_fusion import CrossAttentionFusion
from mmrec_tf.models.din import DIN
from mmrec_tf.models.embedding_mlp import EmbeddingMLP
from mmrec_tf.models.lstm_two_tower import LSTMTwoTower
from mmrec_tf.models.multimodal_retrieval_model import MultimodalRetrievalModel
from mmrec_tf.models.popularity import Popularity
from mmrec_tf.models.ranking_model import RankingModel
from mmrec_tf.models.retrieval_model import RetrievalModel
from mmrec_tf.models.sasrec import SASRec
from mmrec_tf.models.sequence_retrieval_model import SequenceRetrievalModel
from mmrec_tf.models.two_tower import TwoTower
from mmrec_tf.models.vbpr import VBPR

__all__ = ["ArticleLSTM", "BST", "ConcatFusion", "ContentOnly", "CrossAttentionFusion", "DIN", "EmbeddingMLP",
           "LSTMTwoTower", "MultimodalRetrievalModel", "Popularity", "RankingModel", "RetrievalModel", "SASRec",
           "SequenceRetrievalModel", "TwoTower", "VBPR", "registered_model"]
