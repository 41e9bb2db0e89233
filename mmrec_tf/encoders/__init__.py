"""Modality encoders: pretrained (frozen) and trainable text, image and audio encoders."""

from mmrec_tf.encoders.bag_of_words_text_encoder import BagOfWordsTextEncoder
from mmrec_tf.encoders.efficientnet_lite0 import (
    EfficientNetLite0ImageEncoder,
    TorchCheckpointError,
    build_efficientnet_lite0,
    convert_efficientnet_lite0,
    find_efficientnet_lite0_weights,
    load_efficientnet_lite0_torch_weights,
    read_legacy_torch_state_dict,
)
from mmrec_tf.encoders.hub_encoder import HubEncoder, load_saved_model
from mmrec_tf.encoders.image_decoding import ImageDecodeError, decode_image
from mmrec_tf.encoders.log_mel_audio_encoder import LogMelAudioEncoder
from mmrec_tf.encoders.minilm_text_encoder import MiniLMTextEncoder, find_minilm_model_dir
from mmrec_tf.encoders.small_cnn_image_encoder import SmallCNNImageEncoder

__all__ = [
    "BagOfWordsTextEncoder",
    "EfficientNetLite0ImageEncoder",
    "HubEncoder",
    "ImageDecodeError",
    "LogMelAudioEncoder",
    "MiniLMTextEncoder",
    "SmallCNNImageEncoder",
    "TorchCheckpointError",
    "build_efficientnet_lite0",
    "convert_efficientnet_lite0",
    "decode_image",
    "find_efficientnet_lite0_weights",
    "find_minilm_model_dir",
    "load_efficientnet_lite0_torch_weights",
    "load_saved_model",
    "read_legacy_torch_state_dict",
]
