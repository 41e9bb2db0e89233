"""Hash the long tail of a space's users into a few shared, trained buckets."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from mmrec_tf.data.feature_space import FeatureKind, FeatureSpace, FeatureTable
from mmrec_tf.data.hashed_vocabulary import HashedVocabulary


def with_user_buckets(space: FeatureSpace, num_buckets: int, keep_ids: Iterable[str] | None = None) -> FeatureSpace:
    """A copy of ``space`` whose users are a :class:`HashedVocabulary` with ``num_buckets`` buckets.

    ``keep_ids`` (default: every user of ``space``) keep their own index and
    user-feature rows, in ``space``'s order; other users hash to buckets, whose
    user-feature rows are empty (zeros; vector tables: absent). Build examples
    from the returned space so the tail's interactions train the buckets.

    Example:
    >>> from mmrec_tf.data.sources import make_synthetic
    >>> space = FeatureSpace.build(make_synthetic(num_users=5, num_items=8, num_clusters=2))
    >>> frequent = list(space.user_vocab.ids[:3])
    >>> bucketed = with_user_buckets(space, num_buckets=4, keep_ids=frequent)
    >>> bucketed.num_users, bucketed.user_vocab.lookup(frequent).tolist()
    (7, [1, 2, 3])
    """
    known = list(space.user_vocab.ids)
    kept = known if keep_ids is None else [str(i) for i in keep_ids]
    unknown = sorted(set(kept) - set(known))
    if unknown:
        raise ValueError(f"with_user_buckets: keep_ids has {len(unknown)} id(s) the space does not know, "
                         f"e.g. {unknown[:3]}")
    order = pd.Index(known)
    wanted = set(kept)
    kept = [user for user in known if user in wanted]
    vocab = HashedVocabulary(kept, num_buckets)
    rows = np.r_[0, order.get_indexer(kept) + 1]
    tables = {name: _user_rows(table, rows, num_buckets) for name, table in space.user_features.items()}
    return FeatureSpace(vocab, space.item_vocab, space.item_features, tables, space.item_titles, space.schema)


def _user_rows(table: FeatureTable, rows: np.ndarray, num_buckets: int) -> FeatureTable:
    """Rows ``rows`` of ``table`` (row 0 first), then ``num_buckets`` empty rows."""
    values = table.values[rows]
    padding = np.zeros((num_buckets, *values.shape[1:]), values.dtype)
    present = None
    if table.kind == FeatureKind.VECTOR:
        present = np.r_[table.present[rows], np.zeros(num_buckets, bool)]
    return FeatureTable(table.kind, np.concatenate([values, padding]), list(table.vocabulary), present,
                        dict(table.provenance))
