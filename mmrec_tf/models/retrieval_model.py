"""Base class of the two-tower retrieval models."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mmrec_tf.data.pipeline import item_frequencies
from mmrec_tf.tasks import FactorizedTopK, Retrieval
from mmrec_tf.tasks.replicas import replica_share


class RetrievalModel(keras.Model):
    """A two-tower model: users and items map to vectors, a dot product scores them.

    Subclasses implement ``encode_users(features)`` (``user_id`` [B] and
    ``history`` [B, L] item indices) and ``encode_items(item_index)``. The
    model owns its task, a :class:`~mmrec_tf.tasks.Retrieval` with TFRS
    semantics (in-batch softmax; optional temperature, logQ correction from the
    ``item_probability`` feature, accidental-hit removal, hard negatives), and
    under ``evaluate()`` reports TFRS-style factorized top-K accuracy over all
    items. Inputs are dicts of integer indices from a
    :class:`~mmrec_tf.data.FeatureSpace`; the export adds the string lookups.
    """

    uses_history = False
    # True where the training step reads no catalog size, so an update may grow the tables in place
    # (mmrec_tf.update.grow_in_place): the user and item tables are the only weights sized by the vocabularies
    grows_in_place = False

    def __init__(self, num_users: int, num_items: int, temperature: float | None = None,
                 logq_correction: bool = False, remove_accidental_hits: bool = False,
                 num_hard_negatives: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_users = num_users
        self.num_items = num_items
        self.temperature = temperature
        self.logq_correction = logq_correction
        self.remove_accidental_hits = remove_accidental_hits
        self.num_hard_negatives = num_hard_negatives
        self.task = Retrieval(temperature=temperature, remove_accidental_hits=remove_accidental_hits,
                              num_hard_negatives=num_hard_negatives, name="retrieval_task")
        self.top_k = FactorizedTopK(ks=(1, 5, 10, 50, 100), name="factorized_top_k")

    @classmethod
    def from_feature_space(cls, space, **kwargs):
        """Build the model for a :class:`~mmrec_tf.data.FeatureSpace` (sizes and tables)."""
        return cls(num_users=space.num_users, num_items=space.num_items, **kwargs)

    def encode_users(self, features, training=False):
        raise NotImplementedError

    def encode_items(self, item_index, training=False):
        raise NotImplementedError

    def call(self, features, training=False):
        return {"user_embedding": self.encode_users(features, training=training),
                "item_embedding": self.encode_items(features["item_id"], training=training)}

    def score_candidates(self, features, candidates, training=False):
        """Scores ``[B, C]`` of candidate item indices ``[B, C]`` for each user."""
        return self.score_user_embeddings(self.encode_users(features, training=training), candidates,
                                          training=training)

    def score_user_embeddings(self, user_embeddings, candidates, training=False):
        """Scores ``[B, C]``: dot products of user embeddings ``[B, D]`` with candidate item indices ``[B, C]``."""
        items = self.encode_items(candidates, training=training)
        return ops.einsum("bd,bcd->bc", user_embeddings, items)

    def all_item_embeddings(self, batch_size: int = 8192) -> np.ndarray:
        """Embeddings of item indices ``1..num_items`` (row ``i`` is item index ``i + 1``)."""
        indices = np.arange(1, self.num_items + 1, dtype=np.int32)
        embeddings = None
        for start in range(0, len(indices), batch_size):  # filled in place: one float32 copy of the catalog
            part = ops.convert_to_numpy(self.encode_items(indices[start:start + batch_size]))
            if embeddings is None:
                embeddings = np.empty((len(indices), part.shape[1]), np.float32)
            embeddings[start:start + len(part)] = part
        return embeddings

    def catalog_item_embeddings(self, catalog: np.ndarray) -> np.ndarray:
        """Embeddings of the ``catalog``'s item indices, row ``p`` for catalog position ``p``.

        A catalog of every item in index order (position ``p`` is item index
        ``p + 1``) returns :meth:`all_item_embeddings` itself, no reordered copy.

        Example:
        >>> from mmrec_tf.models import TwoTower
        >>> model = TwoTower(num_users=5, num_items=4, embedding_dim=2)
        >>> model.build()
        >>> np.array_equal(model.catalog_item_embeddings(np.array([3, 1]))[0], model.all_item_embeddings()[2])
        True
        """
        embeddings = self.all_item_embeddings()
        return embeddings if self._is_every_item_in_order(catalog) else embeddings[np.asarray(catalog) - 1]

    def catalog_item_table(self, catalog: np.ndarray):
        """:meth:`item_table` when its rows ``1..N`` are the ``catalog`` in order (every item in index order), else ``None``.

        A brute-force export then scores the model's own table instead of a copy.

        Example:
        >>> from mmrec_tf.models import TwoTower
        >>> model = TwoTower(num_users=5, num_items=4, embedding_dim=2)
        >>> model.build()
        >>> model.catalog_item_table(np.arange(1, 5)) is model.item_table(), model.catalog_item_table(np.array([2, 1]))
        (True, None)
        """
        table = self.item_table()
        if table is None or not self._is_every_item_in_order(catalog) or tuple(table.shape)[0] != len(catalog) + 1:
            return None
        return table

    def _is_every_item_in_order(self, catalog: np.ndarray) -> bool:
        return len(catalog) == self.num_items and bool((np.asarray(catalog) == np.arange(1, len(catalog) + 1)).all())

    def item_table(self):
        """The float32 variable whose row ``i`` is ``encode_items(i)`` for every item index, if the item tower is one.

        ``None`` here (towers that compute item vectors); a model whose item
        tower is a plain float32 lookup returns its table, which a brute-force
        export then scores directly instead of storing a second copy.
        """
        return None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        probability = x.get("item_probability") if self.logq_correction else None
        if self.logq_correction and probability is None:
            raise ValueError("logq_correction=True needs an 'item_probability' feature in each batch; "
                             "build batches with mmrec_tf.training.training_dataset")
        loss = self.task(y_pred["user_embedding"], y_pred["item_embedding"], sample_weight=sample_weight,
                         candidate_sampling_probability=probability,
                         candidate_ids=x["item_id"] if self.remove_accidental_hits else None)
        if not training:
            candidates = self.encode_items(ops.arange(1, self.num_items + 1, dtype="int32"))
            self.top_k.update_state(y_pred["user_embedding"], y_pred["item_embedding"], candidates,
                                    sample_weight=sample_weight)
        if self.losses:
            loss = loss + replica_share(ops.sum(self.losses))
        return loss

    def train_step(self, data):
        logs = super().train_step(data)
        top_k_names = {f"top_{k}_categorical_accuracy" for k in self.top_k.ks}
        return {name: value for name, value in logs.items() if name not in top_k_names}

    def prepare(self, train_examples) -> None:
        """Count what the training data fixes before gradients: target item frequencies for logQ."""
        self.item_probability = item_frequencies(train_examples, self.num_items)

    def get_config(self):
        config = super().get_config()
        config.update({"num_users": self.num_users, "num_items": self.num_items,
                       "temperature": self.temperature, "logq_correction": self.logq_correction,
                       "remove_accidental_hits": self.remove_accidental_hits,
                       "num_hard_negatives": self.num_hard_negatives})
        return config


def with_item_tables(cls, space, item_features: list[str] | None = None, **kwargs):
    """``cls`` built for ``space`` on the item tables ``item_features`` (default: all), tables attached.

    The ``from_feature_space`` of the models whose ``item_encoder`` is an
    :class:`~mmrec_tf.layers.ItemFeatureEncoder` over the space's tables.

    Example:
    >>> from mmrec_tf.data import FeatureSpace, load_dataset
    >>> from mmrec_tf.models import LSTMTwoTower
    >>> space = FeatureSpace.build(load_dataset("synthetic", num_users=5, num_items=8, num_clusters=2))
    >>> with_item_tables(LSTMTwoTower, space, item_features=["nope"])
    Traceback (most recent call last):
    ...
    ValueError: item_features ['nope'] are not in the feature space; it has ['genres', 'title']
    """
    specs = space.item_feature_specs()
    names = list(specs) if item_features is None else list(item_features)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ValueError(f"item_features {unknown} are not in the feature space; it has {sorted(specs)}")
    model = cls(num_users=space.num_users, num_items=space.num_items,
                item_feature_specs={n: specs[n] for n in names}, **kwargs)
    model.item_encoder.set_tables({n: space.item_features[n] for n in names})
    return model
