"""IVF index: exact when every partition is probed, exact within the probed partitions otherwise, stock ops only."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mmrec_tf.export.ivf_index import IVFIndex
from mmrec_tf.export.index_choice import make_retrieval_index
from mmrec_tf.export.retrieval_index import parse_index_spec
from mmrec_tf.export.spherical_kmeans import nearest_centroids


def search(index, queries, excluded):
    positions, scores = index.search(tf.constant(queries, tf.float32), tf.constant(excluded, tf.int32))
    return positions.numpy(), scores.numpy()


def exact_top_k(items, queries, excluded, k, allowed=None):
    """Positions and scores of the k best non-excluded (and allowed) items per query, float64, ties by position."""
    scores = queries.astype(np.float64) @ items.astype(np.float64).T
    for row, positions in enumerate(excluded):
        scores[row, positions[positions >= 0]] = -np.inf
        if allowed is not None:
            scores[row, ~allowed[row]] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.fixture(scope="module")
def catalog():
    rng = np.random.default_rng(3)
    items = rng.normal(size=(2003, 16)).astype(np.float32)
    queries = rng.normal(size=(5, 16)).astype(np.float32)
    excluded = rng.integers(-1, 2003, size=(5, 30)).astype(np.int32)
    excluded[:, 0] = np.argmax(queries @ items.T, axis=1)  # the best item of each query is excluded
    return items, queries, excluded


def test_probing_every_partition_equals_brute_force(catalog):
    items, queries, excluded = catalog
    index = IVFIndex(items, k=20, nlist=16, nprobe=16)
    positions, scores = search(index, queries, excluded)
    expected_positions, expected_scores = exact_top_k(items, queries, excluded, 20)
    np.testing.assert_array_equal(positions, expected_positions)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)


def test_few_probes_return_the_exact_top_k_of_the_probed_partitions_without_history(catalog):
    items, queries, excluded = catalog
    index = IVFIndex(items, k=20, nlist=16, nprobe=3)
    positions, scores = search(index, queries, excluded)
    # the probed partitions, recomputed by hand from the stored centroids and layout
    probed = np.argsort(-(queries @ index.centroids.numpy().T), axis=1)[:, :3]
    partition_of_item = nearest_centroids(items, index.centroids.numpy())
    allowed = np.stack([np.isin(partition_of_item, row) for row in probed])
    expected_positions, expected_scores = exact_top_k(items, queries, excluded, 20, allowed)
    np.testing.assert_array_equal(positions, expected_positions)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)
    for row, history in zip(positions, excluded):
        assert not set(row) & set(history[history >= 0])


def test_a_probe_with_fewer_than_k_items_is_padded_with_empty_slots_never_duplicates():
    # two clear directions: 3 items along x, 5 along y; one probe finds only its own partition
    items = np.array([[1, 0.1], [2, 0.0], [3, -0.1], [0.1, 1], [0, 2], [-0.1, 3], [0, 4], [0.2, 5]], np.float32)
    index = IVFIndex(items, k=5, nlist=2, nprobe=1)
    positions, scores = search(index, [[1.0, 0.0], [0.0, 1.0]], [[1, -1], [-1, -1]])
    assert positions.tolist() == [[2, 0, -1, -1, -1], [7, 6, 5, 4, 3]]
    np.testing.assert_allclose(scores[0, :2], [3.0, 1.0])
    assert np.isneginf(scores[0, 2:]).all()


def test_new_items_join_the_partitions_trained_on_the_known_ones(catalog):
    items, _, _ = catalog
    known = IVFIndex(items[:1500], k=5, nlist=8)
    grown = IVFIndex(items, k=5, nlist=8, training_rows=np.arange(1500))
    np.testing.assert_array_equal(grown.centroids.numpy(), known.centroids.numpy())
    offsets, slots = grown.block_offsets.numpy(), grown.slot_positions.numpy()
    # partition p is blocks offsets[p]:offsets[p + 1]; slot -1 pads a block
    members = [slots[start:end][slots[start:end] >= 0] for start, end in zip(offsets[:-1], offsets[1:])]
    partition_of_item = np.empty(len(items), np.int64)
    for label, positions in enumerate(members):
        partition_of_item[positions] = label
    np.testing.assert_array_equal(partition_of_item, nearest_centroids(items, known.centroids.numpy()))
    assert (slots[-1] == -1).all() and sorted(np.concatenate(members)) == list(range(len(items)))


def test_clustering_is_deterministic_and_empty_batches_work(catalog):
    items, _, _ = catalog
    first, second = IVFIndex(items, k=5, nlist=8), IVFIndex(items, k=5, nlist=8)
    np.testing.assert_array_equal(first.slot_positions.numpy(), second.slot_positions.numpy())
    positions, scores = search(first, np.zeros((0, 16)), np.zeros((0, 2)))
    assert positions.shape == (0, 5) and scores.shape == (0, 5)


def test_index_specs_and_bad_options():
    assert parse_index_spec("ivf") == ("ivf", {})
    index = make_retrieval_index("ivf:nlist=4,nprobe=2", np.eye(8, dtype=np.float32), k=3)
    assert (index.kind, index.nlist, index.nprobe) == ("ivf", 4, 2)
    for spec, message in (("ivf:nlist=0", "positive ints"), ("ivf:lists=4", "expected options"),
                          ("bfloat16:nprobe=2", "takes no options"), ("annoy", "index must be one of")):
        with pytest.raises(ValueError, match=message):
            parse_index_spec(spec)
    with pytest.raises(ValueError, match="nprobe must be an int from 1 to nlist=4"):
        IVFIndex(np.eye(8, dtype=np.float32), k=3, nlist=4, nprobe=5)
    with pytest.raises(ValueError, match="nlist must be an int from 1 to the catalog size 8"):
        IVFIndex(np.eye(8, dtype=np.float32), k=3, nlist=9)


def item_tables(version_dir, num_items: int) -> list[str]:
    """``dtype shape`` of every saved table of vectors (2-D or more) with a vector per catalog item (or more)."""
    reader = tf.train.load_checkpoint(str(version_dir / "variables" / "variables"))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    return sorted(f"{dtypes[name].name} {shapes[name]}" for name in shapes
                  if len(shapes[name]) >= 2 and np.prod(shapes[name][:-1]) >= num_items and shapes[name][-1] == 8)


def test_ivf_export_is_servable_by_stock_tensorflow_and_equals_brute_force(tmp_path):
    from mmrec_tf.data.sources import make_synthetic
    from mmrec_tf.export.saved_model import export_model
    from mmrec_tf.export.serve_check import serve_check
    from mmrec_tf.registry import create_model
    from mmrec_tf import FeatureSpace

    space = FeatureSpace.build(make_synthetic(num_users=20, num_items=300, num_clusters=4))
    model = create_model("two_tower", space=space, embedding_dim=8)
    model.build()
    exports = {index: export_model(model, space, tmp_path, index.split(":")[0], k=10, index=index)
               for index in ("brute_force", "ivf:nlist=8,nprobe=8", "bfloat16")}
    # one item table per precision: the model's float32 one (the re-rank reads it) and the index's bfloat16 one
    assert item_tables(exports["brute_force"], 300) == ["float32 [301, 8]"]  # it scores the model's table
    assert item_tables(exports["bfloat16"], 300) == ["bfloat16 [320, 8]", "float32 [301, 8]"]  # chunks of 64
    # ivf: blocks of 32 rows, each partition padded to whole blocks, plus one padding block
    ivf = tf.saved_model.load(str(exports["ivf:nlist=8,nprobe=8"]))
    blocks = int(ivf.index.block_offsets.numpy()[-1]) + 1
    assert item_tables(exports["ivf:nlist=8,nprobe=8"], 300) == [f"bfloat16 [{blocks}, 32, 8]", "float32 [301, 8]"]
    report = serve_check(tmp_path / "ivf", batch_sizes=(1,), repeats=1)
    assert report["servable"], report
    assert report["ops"]["unregistered"] == [] and report["unexpected_modules"] == []
    request = {"user_id": tf.constant(list(space.user_vocab.ids[:4])),
               "history": tf.constant([list(space.item_vocab.ids[i:i + 3]) for i in range(4)])}
    outputs = {name: tf.saved_model.load(str(path)).signatures["retrieve"](**request)
               for name, path in exports.items()}
    np.testing.assert_array_equal(outputs["ivf:nlist=8,nprobe=8"]["item_ids"].numpy(),
                                  outputs["brute_force"]["item_ids"].numpy())
