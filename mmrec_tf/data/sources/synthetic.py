"""A synthetic dataset with planted structure that models can learn and random ones cannot."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.schema import Feature, Schema

CLUSTER_WORDS = ("amber", "basalt", "cobalt", "dune", "ember", "fjord", "garnet", "harbor",
                 "indigo", "jasper", "kelp", "lumen")

SYNTHETIC_SCHEMA = Schema(
    [
        Feature("user_id", "id", "user"),
        Feature("item_id", "id", "item"),
        Feature("rating", "label", "interaction"),
        Feature("timestamp", "timestamp", "interaction"),
        Feature("title", "text", "item"),
        Feature("genres", "multi_categorical", "item"),
        Feature("segment", "categorical", "user"),
    ]
)


def make_synthetic(
    num_users: int = 200,
    num_items: int = 120,
    num_clusters: int = 4,
    interactions_per_user: int = 20,
    follow_probability: float = 0.8,
    seed: int = 0,
    off_cluster_probability: float = 0.0,
) -> Dataset:
    """Users walk through item clusters in a fixed order.

    Items are split into ``num_clusters`` clusters, each with a fixed cyclic
    order. Every user prefers one cluster; each next item is the successor of
    the previous one in that cycle with ``follow_probability``, else a random
    item of the user's cluster. So the next item is predictable from the last
    one (a sequence model wins), the cluster from the user or any history item
    (an ID model beats popularity), and titles and genres name the cluster
    (content features carry signal). Ratings are 5 for items of the user's
    cluster visited in order and 3 for the random jumps. With
    ``off_cluster_probability`` > 0, each interaction is instead, with that
    probability, an item of another cluster, rated 1 (the walk then goes on
    from where it was): whether a user likes an item depends on how the item
    relates to the user's history, which a model that scores ``f(user) + g(item)``
    cannot express (tutorial 02).

    Example:
    >>> ds = make_synthetic(num_users=10, num_items=12, num_clusters=3, interactions_per_user=5)
    >>> ds.num_interactions, len(ds.items)
    (50, 12)
    """
    if num_clusters > len(CLUSTER_WORDS) or num_items < 2 * num_clusters:
        raise ValueError(
            f"num_clusters must be at most {len(CLUSTER_WORDS)} and num_items at least 2 per cluster; "
            f"got num_clusters={num_clusters}, num_items={num_items}"
        )
    rng = np.random.default_rng(seed)
    item_cluster = np.arange(num_items) % num_clusters
    cycles = [rng.permutation(np.flatnonzero(item_cluster == c)) for c in range(num_clusters)]
    successor = {}
    for cycle in cycles:
        for position, item in enumerate(cycle):
            successor[int(item)] = int(cycle[(position + 1) % len(cycle)])

    rows = []
    clock = 1_000_000_000
    user_cluster = rng.integers(0, num_clusters, size=num_users)
    for user in range(num_users):
        cycle = cycles[user_cluster[user]]
        current, previous = int(rng.choice(cycle)), None
        for _ in range(interactions_per_user):
            clock += int(rng.integers(1, 100))
            if off_cluster_probability and rng.random() < off_cluster_probability:
                other = int(rng.choice(np.flatnonzero(item_cluster != user_cluster[user])))
                rows.append((f"u{user}", f"i{other}", 1.0, clock))
                continue
            followed = previous is None or successor[previous] == current
            rows.append((f"u{user}", f"i{current}", 5.0 if followed else 3.0, clock))
            previous = current
            if rng.random() < follow_probability:
                current = successor[current]
            else:
                current = int(rng.choice(cycle))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    interactions["rating"] = interactions["rating"].astype("float32")
    interactions["timestamp"] = interactions["timestamp"].astype("int64")

    words = CLUSTER_WORDS
    items = pd.DataFrame(
        {
            "title": [f"{words[c]} item {i}" for i, c in enumerate(item_cluster)],
            "genres": [(f"g{c}", f"g{(c + 1) % num_clusters}") if i % 3 == 0 else (f"g{c}",)
                       for i, c in enumerate(item_cluster)],
        },
        index=pd.Index([f"i{i}" for i in range(num_items)], name="item_id"),
    )
    users = pd.DataFrame(
        {"segment": [f"s{c}" for c in user_cluster]},
        index=pd.Index([f"u{u}" for u in range(num_users)], name="user_id"),
    )
    return Dataset(
        name="synthetic", interactions=interactions, items=items, users=users,
        schema=SYNTHETIC_SCHEMA, source=f"make_synthetic(seed={seed})", item_title_feature="title",
    )
