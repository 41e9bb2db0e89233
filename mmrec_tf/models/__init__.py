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

from mmrec_tf.models.concat_fusion import ConcatFusion  # noqa: E402
from mmrec_tf.models.content_only import ContentOnly  # noqa: E402
from mmrec_tf.models.cross_attention_fusion import CrossAttentionFusion  # noqa: E402
from mmrec_tf.models.multimodal_retrieval_model import MultimodalRetrievalModel  # noqa: E402
from mmrec_tf.models.vbpr import VBPR  # noqa: E402

__all__ += ["ConcatFusion", "ContentOnly", "CrossAttentionFusion", "MultimodalRetrievalModel", "VBPR"]
