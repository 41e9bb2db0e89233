"""ItemFeatureTable: validation, .npz round trip without pickle, alignment, resumable builder."""

import json
import zipfile

import numpy as np
import pytest

from mmrec_tf.data.item_feature_table import (
    ItemFeatureTable,
    ItemFeatureTableError,
    build_item_feature_table,
)


def _table():
    return ItemFeatureTable(
        ["i1", "i2", "i3"],
        np.array([[1.0, 2.0], [0.0, 0.0], [3.0, -4.0]]),
        present=np.array([True, False, True]),
        modality="image",
        encoder="efficientnet_lite0",
        encoder_version="wheel-0.1.0",
    )


def test_save_load_round_trip_without_pickle(tmp_path):
    table = _table()
    path = table.save(tmp_path / "sub" / "posters.npz")
    assert path.exists() and not list(path.parent.glob(".*tmp"))
    with np.load(path, allow_pickle=False) as raw:
        assert raw["item_ids"].dtype.kind == "U"
        assert raw["vectors"].dtype == np.float32
        assert raw["present"].dtype == np.bool_
        assert int(raw["format_version"]) == 1
    loaded = ItemFeatureTable.load(path)
    np.testing.assert_array_equal(loaded.item_ids, ["i1", "i2", "i3"])
    np.testing.assert_array_equal(loaded.vectors, table.vectors)
    np.testing.assert_array_equal(loaded.present, [True, False, True])
    assert (loaded.modality, loaded.encoder, loaded.encoder_version) == (
        "image", "efficientnet_lite0", "wheel-0.1.0")
    assert (len(loaded), loaded.dim, loaded.num_present) == (3, 2, 2)


def test_to_index_matrix_aligns_and_masks():
    matrix, mask = _table().to_index_matrix(["", "i3", "unknown", "i2", "i1", "i3"])
    expected = np.array([[0, 0], [3, -4], [0, 0], [0, 0], [1, 2], [3, -4]], dtype=np.float32)
    np.testing.assert_array_equal(matrix, expected)
    np.testing.assert_array_equal(mask, [False, True, False, False, True, True])
    assert matrix.dtype == np.float32 and mask.dtype == np.bool_


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"item_ids": ["a", "a"]}, "duplicate item id 'a'"),
        ({"item_ids": ["a", ""]}, "row 1 is the empty string"),
        ({"item_ids": ["a", 2]}, "row 1 is 2"),
        ({"vectors": np.ones((3, 2))}, "one row per item id"),
        ({"present": np.array([1, 0])}, "bool array"),
        ({"vectors": np.array([[np.nan, 0.0], [0.0, 0.0]])}, "item 'a' (row 0) has non-finite"),
        ({"vectors": np.array([[1.0, 0.0], [0.5, 0.0]])}, "marked missing but has a non-zero"),
        ({"encoder": ""}, "encoder must be a non-empty string"),
    ],
)
def test_invalid_tables_are_rejected(kwargs, message):
    args = dict(item_ids=["a", "b"], vectors=np.zeros((2, 2)), present=np.array([True, False]),
                modality="text", encoder="minilm", encoder_version="1")
    args.update(kwargs)
    with pytest.raises(ItemFeatureTableError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ItemFeatureTable(**args)


def test_load_errors_name_the_file(tmp_path):
    bad = tmp_path / "not_a_table.npz"
    np.savez(bad, vectors=np.zeros((1, 2)))
    with pytest.raises(ItemFeatureTableError, match="not_a_table.npz.*missing"):
        ItemFeatureTable.load(bad)
    pickled = tmp_path / "pickled.npz"
    arrays = {k: v for k, v in np.load(_table().save(tmp_path / "ok.npz")).items()}
    arrays["item_ids"] = np.array(["i1", "i2", "i3"], dtype=object)
    np.savez(pickled, **arrays)
    with pytest.raises(ItemFeatureTableError, match="pickled.npz"):
        ItemFeatureTable.load(pickled)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((tmp_path / "ok.npz").read_bytes()[:100])
    with pytest.raises(ItemFeatureTableError, match="truncated.npz"):
        ItemFeatureTable.load(truncated)


def _encoder(calls, fail_at_call=None):
    def encode(ids):
        calls.append(list(ids))
        if fail_at_call is not None and len(calls) == fail_at_call:
            raise KeyboardInterrupt("simulated interruption")
        vectors = np.array([[float(len(i)), float(i[-1] == "7"), 1.0] for i in ids])
        present = np.array([not i.endswith("3") for i in ids])
        return vectors, present
    return encode


def test_builder_resumes_after_interruption(tmp_path):
    ids = [f"item{i}" for i in range(10)]
    output = tmp_path / "table.npz"
    first_calls = []
    with pytest.raises(KeyboardInterrupt):
        build_item_feature_table(ids, _encoder(first_calls, fail_at_call=3), output, batch_size=3,
                                 modality="text", encoder="toy", encoder_version="1",
                                 progress=False)
    assert not output.exists()
    partial = tmp_path / "table.npz.partial"
    assert sorted(p.name for p in partial.glob("batch_*.npz")) == [
        "batch_00000000.npz", "batch_00000001.npz"]

    second_calls = []
    table = build_item_feature_table(ids, _encoder(second_calls), output, batch_size=3,
                                     modality="text", encoder="toy", encoder_version="1",
                                     progress=True)
    assert second_calls == [ids[6:9], ids[9:]]
    assert not partial.exists()

    reference_calls = []
    reference = build_item_feature_table(ids, _encoder(reference_calls), tmp_path / "ref.npz",
                                         batch_size=3, modality="text", encoder="toy",
                                         encoder_version="1", progress=False)
    loaded = ItemFeatureTable.load(output)
    for result in (table, loaded):
        np.testing.assert_array_equal(result.item_ids, ids)
        np.testing.assert_array_equal(result.vectors, reference.vectors)
        np.testing.assert_array_equal(result.present, reference.present)
    np.testing.assert_array_equal(loaded.present, [i != 3 for i in range(10)])
    np.testing.assert_array_equal(loaded.vectors[3], [0, 0, 0])
    np.testing.assert_array_equal(loaded.vectors[7], [5, 1, 1])


def test_builder_refuses_partial_results_of_another_run(tmp_path):
    ids = [f"item{i}" for i in range(4)]
    output = tmp_path / "table.npz"
    with pytest.raises(KeyboardInterrupt):
        build_item_feature_table(ids, _encoder([], fail_at_call=2), output, batch_size=2,
                                 modality="text", encoder="toy", encoder_version="1",
                                 progress=False)
    manifest = json.loads((tmp_path / "table.npz.partial" / "manifest.json").read_text())
    assert manifest["encoder_version"] == "1" and manifest["batch_size"] == 2
    with pytest.raises(ItemFeatureTableError, match=r"table.npz.partial.*encoder_version"):
        build_item_feature_table(ids, _encoder([]), output, batch_size=2, modality="text",
                                 encoder="toy", encoder_version="2", progress=False)


def test_builder_accepts_plain_vectors_and_checks_batch_output(tmp_path):
    table = build_item_feature_table(["a", "bb"], lambda ids: np.ones((len(ids), 2)),
                                     tmp_path / "t.npz", batch_size=1, modality="audio",
                                     encoder="ones", encoder_version="1", progress=False)
    assert table.present.all() and table.vectors.shape == (2, 2)
    with pytest.raises(ItemFeatureTableError, match=r"shape \(1, 2\) for batch 0.*expected \[2, D\]"):
        build_item_feature_table(["a", "b"], lambda ids: np.ones((1, 2)), tmp_path / "u.npz",
                                 batch_size=2, modality="audio", encoder="bad",
                                 encoder_version="1", progress=False)
    with pytest.raises(ItemFeatureTableError, match="non-finite values for item 'b'"):
        build_item_feature_table(["a", "b"], lambda ids: np.array([[0.0], [np.inf]]),
                                 tmp_path / "v.npz", batch_size=2, modality="audio",
                                 encoder="bad", encoder_version="1", progress=False)
    widths = iter([2, 3])
    with pytest.raises(ItemFeatureTableError, match="width 3 for batch 1"):
        build_item_feature_table(["a", "b"], lambda ids: np.zeros((len(ids), next(widths))),
                                 tmp_path / "w.npz", batch_size=1, modality="audio",
                                 encoder="bad", encoder_version="1", progress=False)
    with pytest.raises(ItemFeatureTableError, match="duplicate item id 'a'"):
        build_item_feature_table(["a", "a"], lambda ids: np.zeros((len(ids), 1)),
                                 tmp_path / "x.npz", modality="audio", encoder="e",
                                 encoder_version="1", progress=False)


def test_saved_file_is_a_plain_npz_archive(tmp_path):
    path = _table().save(tmp_path / "t.npz")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == sorted(
            f"{k}.npy" for k in ("format_version", "item_ids", "vectors", "present", "modality",
                                 "encoder", "encoder_version"))
