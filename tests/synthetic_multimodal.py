"""A synthetic dataset whose item vectors encode the item's cluster, with modalities missing at random.

``make_synthetic`` puts item ``i{n}`` in cluster ``n % num_clusters`` and
users walk inside one cluster. ``multimodal_synthetic`` attaches two vector
modalities: ``poster`` (image) and ``plot`` (text), each the cluster's random
centre plus Gaussian noise, and each missing for a share of the items
(recorded in the presence mask, as real tables do). So content alone tells
an item's cluster, the way a poster or a plot tells a film's kind.
"""

from __future__ import annotations

import numpy as np

from mmrec_tf.data.item_feature_table import ItemFeatureTable
from mmrec_tf.data.sources.synthetic import make_synthetic

MODALITIES = {"poster": ("image", 12, 0.25), "plot": ("text", 6, 0.3)}  # name: (modality, dim, missing share)


def item_clusters(item_ids, num_clusters: int) -> np.ndarray:
    return np.array([int(item[1:]) % num_clusters for item in item_ids])


def planted_tables(item_ids, num_clusters: int, noise: float = 0.8, seed: int = 0) -> dict[str, ItemFeatureTable]:
    """One ``ItemFeatureTable`` per modality of :data:`MODALITIES` for ``item_ids``."""
    rng = np.random.default_rng(seed)
    clusters = item_clusters(item_ids, num_clusters)
    tables = {}
    for name, (modality, dim, missing) in MODALITIES.items():
        centres = rng.normal(size=(num_clusters, dim))
        vectors = centres[clusters] + noise * rng.normal(size=(len(item_ids), dim))
        present = rng.random(len(item_ids)) >= missing
        vectors[~present] = 0.0
        tables[name] = ItemFeatureTable(list(item_ids), vectors, present, modality=modality, encoder="planted",
                                        encoder_version="cluster centre + noise")
    return tables


def multimodal_synthetic(num_users: int = 150, num_items: int = 120, num_clusters: int = 6,
                         interactions_per_user: int = 14, seed: int = 0):
    """``make_synthetic`` with the planted ``poster`` and ``plot`` vector tables attached."""
    dataset = make_synthetic(num_users=num_users, num_items=num_items, num_clusters=num_clusters,
                             interactions_per_user=interactions_per_user, seed=seed)
    return dataset.with_item_vectors(planted_tables(dataset.item_ids(), num_clusters, seed=seed))
