"""Keras layers the catalog models are built from (all serializable, registered under ``mmrec_tf``)."""

from mmrec_tf.layers.dice import Dice
from mmrec_tf.layers.gated_residual import GatedResidual
from mmrec_tf.layers.history import most_recent_history
from mmrec_tf.layers.item_feature_encoder import ItemFeatureEncoder
from mmrec_tf.layers.modality_cross_attention import ModalityCrossAttention
from mmrec_tf.layers.modality_dropout import ModalityDropout
from mmrec_tf.layers.target_attention import TargetAttention

__all__ = ["Dice", "GatedResidual", "ItemFeatureEncoder", "ModalityCrossAttention", "ModalityDropout",
           "TargetAttention", "most_recent_history"]
