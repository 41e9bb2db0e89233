"""Visual Bayesian Personalised Ranking (VBPR) as a two-tower model."""

from __future__ import annotations

import keras
from keras import ops

from mmrec_tf.layers.item_feature_encoder import ItemFeatureEncoder
from mmrec_tf.models.retrieval_model import RetrievalModel
from mmrec_tf.model_registration import register_model


@register_model("vbpr", task="retrieval")
@keras.saving.register_keras_serializable(package="mmrec_tf")
class VBPR(RetrievalModel):
    """VBPR: matrix factorisation plus a user taste for a linear projection of the item's content vectors.

    He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit
    Feedback", AAAI 2016, score the pair ``(u, i)`` as

    ``x_ui = beta_i + gamma_u . gamma_i + theta_u . (E f_i) + beta' . f_i``

    with item bias ``beta_i``, latent factors ``gamma``, user "visual"
    factors ``theta_u``, a learned projection ``E`` of the item's visual
    features ``f_i`` and a visual bias ``beta'``. Here ``f_i`` is the
    concatenation of the chosen item feature tables (``item_features``;
    default: every precomputed ``vector`` table, e.g. the poster vectors on
    MovieLens, or VGGish + Whisper + MiniLM on Last.fm - the "visual" slot
    then holds audio and text, as multimodal toolkits do), each scaled to
    unit RMS as in :class:`~mmrec_tf.layers.ItemFeatureEncoder`, and an item
    lacking a vector gets a learned "missing" vector for it instead of zeros.
    The model is the dot product of ``[gamma_u; theta_u; 1]`` and
    ``[gamma_i; E f_i; beta_i + beta' . f_i]`` (one id embedding of width
    ``embedding_dim + 1`` carries ``gamma_i`` and ``beta_i``; each feature's
    projection of the same width carries its block of ``E`` and of
    ``beta'``; the global offset ``beta_u + alpha`` cancels in a ranking).

    Training: the repository's in-batch softmax retrieval task (with logQ
    correction), not the paper's BPR loss with uniformly sampled negatives;
    both fit the same scoring function, and the shared task keeps the
    comparison with the other two-tower models about the model.
    Items without training interactions (cold-start items) get
    ``gamma_i = beta_i = 0`` (:meth:`prepare` records which items were
    trained), so they are scored by their content part only, as in the
    paper's cold-start experiment.

    Example:
    >>> import numpy as np
    >>> specs = {"poster": {"kind": "vector", "shape": [4], "cardinality": 4}}
    >>> model = VBPR(num_users=3, num_items=5, item_feature_specs=specs, embedding_dim=6)
    >>> values = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    >>> model.item_encoder.set_tables({"poster": (values, np.array([False, True, True, True, False, True]))})
    >>> out = model({"user_id": np.array([1, 2]), "history": np.zeros((2, 1), "int32"), "item_id": np.array([3, 5])})
    >>> tuple(out["user_embedding"].shape), tuple(out["item_embedding"].shape)
    ((2, 13), (2, 13))
    """

    def __init__(self, num_users: int, num_items: int, item_feature_specs: dict | None = None,
                 embedding_dim: int = 32, temperature: float | None = None, logq_correction: bool = True,
                 remove_accidental_hits: bool = True, **kwargs):
        super().__init__(num_users=num_users, num_items=num_items, temperature=temperature,
                         logq_correction=logq_correction, remove_accidental_hits=remove_accidental_hits, **kwargs)
        self.item_feature_specs = dict(item_feature_specs or {})
        if not self.item_feature_specs:
            raise ValueError("VBPR needs at least one item feature table (the 'visual' features f_i)")
        self.embedding_dim = embedding_dim
        self.item_encoder = ItemFeatureEncoder(num_items, embedding_dim + 1, output_dim=None,
                                               feature_specs=self.item_feature_specs, name="item_encoder")
        self.user_embedding = keras.layers.Embedding(num_users + 1, 2 * embedding_dim, name="user_factors")

    @classmethod
    def from_feature_space(cls, space, item_features: list[str] | None = None, **kwargs):
        """Build for a feature space; ``item_features`` default: its ``vector`` tables (else every table)."""
        specs = space.item_feature_specs()
        if item_features is None:
            vectors = [n for n, s in specs.items() if s["kind"] == "vector"]
            item_features = vectors or list(specs)
        unknown = [n for n in item_features if n not in specs]
        if unknown:
            raise ValueError(f"item_features {unknown} are not in the feature space; it has {sorted(specs)}")
        model = cls(num_users=space.num_users, num_items=space.num_items,
                    item_feature_specs={n: specs[n] for n in item_features}, **kwargs)
        model.item_encoder.set_tables({n: space.item_features[n] for n in item_features})
        return model

    def build(self, input_shape=None):
        if not self.item_encoder.built:
            self.item_encoder.build()
        self.user_embedding.build((None,))
        self.item_trained = self.add_weight(name="item_trained", shape=(self.num_items + 1,), initializer="ones",
                                            trainable=False)

    def prepare(self, train_examples) -> None:
        """Item frequencies for logQ, and which items had training interactions (the others get no id part)."""
        super().prepare(train_examples)
        if not self.built:
            self.build()
        self.item_trained.assign((self.item_probability > 0).astype("float32"))

    def encode_users(self, features, training=False):
        user = ops.cast(features["user_id"], "int32")
        known = ops.expand_dims(ops.cast(ops.not_equal(user, 0), self.compute_dtype), -1)
        factors = self.user_embedding(user) * known
        return ops.concatenate([factors, ops.ones_like(factors[:, :1])], axis=-1)

    def encode_items(self, item_index, training=False):
        item_index = ops.cast(item_index, "int32")
        width = self.embedding_dim + 1
        parts = ops.reshape(self.item_encoder(item_index),
                            (*ops.shape(item_index), 1 + len(self.item_feature_specs), width))
        trained = ops.expand_dims(ops.cast(ops.take(self.item_trained, item_index, axis=0), self.compute_dtype), -1)
        identity = parts[..., 0, :] * trained
        content = ops.sum(parts[..., 1:, :], axis=-2)
        bias = identity[..., -1:] + content[..., -1:]
        return ops.concatenate([identity[..., :-1], content[..., :-1], bias], axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"item_feature_specs": self.item_feature_specs, "embedding_dim": self.embedding_dim})
        return config
