"""Vocabularies and feature tables, computed by hand, and their save/load round trip."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace, FeatureTable, tokenize
from mmrec_tf.data.schema import Feature, FeatureKind, Schema
from mmrec_tf.data.vocabulary import Vocabulary
from mmrec_tf.errors import DataError

# === Vocabulary ===


def test_vocabulary_reserves_zero_for_unknown_and_padding():
    vocab = Vocabulary(["b", "a", "Café"])
    assert vocab.size == 4 and len(vocab) == 3
    assert vocab.lookup(["a", "b", "Café", "zzz", ""]).tolist() == [2, 1, 3, 0, 0]
    assert vocab.lookup([]).dtype == np.int32
    assert [vocab.id_of(i) for i in range(4)] == ["", "b", "a", "Café"]
    assert "a" in vocab and "" not in vocab and "zzz" not in vocab
    assert Vocabulary([1, 2]).lookup(["1", "2"]).tolist() == [1, 2]  # ids are strings


def test_vocabulary_rejects_duplicates_and_the_empty_string():
    with pytest.raises(ValueError, match="'a' appears twice"):
        Vocabulary(["a", "b", "a"])
    with pytest.raises(ValueError, match="reserved for padding"):
        Vocabulary(["a", ""])


def test_vocabulary_save_load_round_trip(tmp_path):
    vocab = Vocabulary(["x", "ü-ser", "日本"])
    vocab.save(tmp_path / "ids.json")
    assert json.loads((tmp_path / "ids.json").read_text(encoding="utf-8")) == ["x", "ü-ser", "日本"]
    loaded = Vocabulary.load(tmp_path / "ids.json")
    assert loaded.ids.tolist() == vocab.ids.tolist()
    assert loaded.lookup(["日本", "x"]).tolist() == [3, 1]
    (tmp_path / "bad.json").write_text('{"ids": ["a"]}')
    with pytest.raises(ValueError, match="bad.json"):
        Vocabulary.load(tmp_path / "bad.json")
    (tmp_path / "numbers.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON list of id strings"):
        Vocabulary.load(tmp_path / "numbers.json")


def test_tokenize():
    assert tokenize("Toy Story (1995)") == ["toy", "story", "1995"]
    assert tokenize("Misérables, Les") == ["misérables", "les"]
    assert tokenize("") == [] and tokenize("--") == []


# === Tables by hand ===

HAND_SCHEMA = Schema([
    Feature("user_id", "id", "user"), Feature("item_id", "id", "item"),
    Feature("colour", "categorical", "item"), Feature("tags", "multi_categorical", "item"),
    Feature("price", "numeric", "item"), Feature("title", "text", "item"),
    Feature("segment", "categorical", "user"),
])


def hand_dataset() -> Dataset:
    """Items i1..i3 in the table; i9 only appears in interactions (no features)."""
    items = pd.DataFrame(
        {"colour": ["b", "a", ""], "tags": [("x", "y"), ("y",), ()], "price": [1.0, 3.0, np.nan],
         "title": ["Red Fox", "red dog, dog", None]},
        index=pd.Index(["i1", "i2", "i3"], name="item_id"))
    users = pd.DataFrame({"segment": ["s2", "s1"]}, index=pd.Index(["u1", "u2"], name="user_id"))
    interactions = pd.DataFrame({"user_id": ["u1", "u3", "u2"], "item_id": ["i2", "i9", "i1"]})
    return Dataset("hand", interactions, HAND_SCHEMA, items=items, users=users, item_title_feature="title")


@pytest.fixture(scope="module")
def hand_space():
    return FeatureSpace.build(hand_dataset(), max_text_tokens=2)


def test_vocabularies_put_table_ids_first_then_ids_only_in_interactions(hand_space):
    assert hand_space.item_vocab.ids.tolist() == ["i1", "i2", "i3", "i9"]
    assert hand_space.user_vocab.ids.tolist() == ["u1", "u2", "u3"]
    assert (hand_space.num_items, hand_space.num_users) == (4, 3)
    assert hand_space.item_titles[:2] == ["Red Fox", "red dog, dog"]
    assert hand_space.item_titles[3] == "i9", "an item without a table row is shown by its id"


def test_missing_title_falls_back_to_the_item_id(hand_space):
    assert hand_space.item_titles[2] == "i3"


def test_categorical_table_by_hand(hand_space):
    table = hand_space.item_features["colour"]
    assert table.kind == FeatureKind.CATEGORICAL and table.vocabulary == ["a", "b"]
    # rows: 0 unknown, i1 'b' → 2, i2 'a' → 1, i3 '' → 0, i9 (no row) → 0
    np.testing.assert_array_equal(table.values, [0, 2, 1, 0, 0])
    assert table.values.dtype == np.int32
    assert table.spec() == {"kind": "categorical", "shape": [], "cardinality": 3}


def test_multi_categorical_table_by_hand(hand_space):
    table = hand_space.item_features["tags"]
    assert table.vocabulary == ["x", "y"]
    np.testing.assert_array_equal(table.values, [[0, 0], [1, 1], [0, 1], [0, 0], [0, 0]])
    assert table.values.dtype == np.float32
    assert table.spec() == {"kind": "multi_categorical", "shape": [2], "cardinality": 2}


def test_numeric_table_is_standardised_by_hand(hand_space):
    table = hand_space.item_features["price"]
    # finite values 1 and 3: mean 2, (population) std 1; missing → 0
    np.testing.assert_allclose(table.values, [[0], [-1], [1], [0], [0]])
    assert table.values.dtype == np.float32
    assert table.spec() == {"kind": "numeric", "shape": [1], "cardinality": 1}


def test_text_table_by_hand(hand_space):
    table = hand_space.item_features["title"]
    # tokens: i1 [red, fox]; i2 [red, dog, dog]; counts dog 2, red 2, fox 1 → dog=2, red=3, fox=4
    assert table.vocabulary == ["dog", "red", "fox"]
    np.testing.assert_array_equal(table.values, [[0, 0], [3, 4], [3, 2], [0, 0], [0, 0]])
    assert table.spec() == {"kind": "text", "shape": [2], "cardinality": 5}
    small = FeatureSpace.build(hand_dataset(), max_text_tokens=3, text_vocabulary_size=2).item_features["title"]
    assert small.vocabulary == ["dog", "red"]
    np.testing.assert_array_equal(small.values, [[0, 0, 0], [3, 1, 0], [3, 2, 2], [0, 0, 0], [0, 0, 0]])


def test_user_tables_and_unknown_rows_are_zero(hand_space):
    segment = hand_space.user_features["segment"]
    np.testing.assert_array_equal(segment.values, [0, 2, 1, 0])  # u3 has no row in users
    for tables in (hand_space.item_features, hand_space.user_features):
        for name, table in tables.items():
            assert not np.any(table.values[0]), f"row 0 of {name} must be all zeros"
    unknown_item = hand_space.item_vocab.lookup(["i9"])[0]
    for name, table in hand_space.item_features.items():
        assert not np.any(table.values[unknown_item]), f"{name}: an item without features must be zero"


def test_feature_space_of_synthetic_data(tiny_dataset, tiny_space):
    assert tiny_space.num_items == 40 and tiny_space.num_users == 60
    assert sorted(tiny_space.item_features) == ["genres", "title"]
    assert sorted(tiny_space.user_features) == ["segment"]
    assert tiny_space.item_features["title"].values.shape == (41, 8)
    assert tiny_space.item_features["genres"].values.shape == (41, 4)
    index = tiny_space.item_vocab.lookup(["i3"])[0]
    assert tiny_space.item_titles[index - 1] == tiny_dataset.items.at["i3", "title"]
    genres = tiny_space.item_features["genres"]
    expected = np.isin(genres.vocabulary, tiny_dataset.items.at["i3", "genres"]).astype(np.float32)
    np.testing.assert_array_equal(genres.values[index], expected)


# === Save / load ===


def assert_same_space(actual: FeatureSpace, expected: FeatureSpace):
    assert actual.user_vocab.ids.tolist() == expected.user_vocab.ids.tolist()
    assert actual.item_vocab.ids.tolist() == expected.item_vocab.ids.tolist()
    assert actual.item_titles == expected.item_titles
    assert actual.schema.to_dict() == expected.schema.to_dict()
    for mine, theirs in ((actual.item_features, expected.item_features),
                         (actual.user_features, expected.user_features)):
        assert sorted(mine) == sorted(theirs)
        for name in mine:
            assert mine[name].kind == theirs[name].kind and mine[name].vocabulary == theirs[name].vocabulary
            assert mine[name].values.dtype == theirs[name].values.dtype
            np.testing.assert_array_equal(mine[name].values, theirs[name].values)


def test_save_load_round_trip_without_pickle(tmp_path, hand_space, tiny_space):
    for name, space in (("hand", hand_space), ("tiny", tiny_space)):
        folder = tmp_path / name
        space.save(folder)
        assert sorted(p.name for p in folder.iterdir()) == [
            "feature_space.json", "item_ids.json", "tables.npz", "user_ids.json"]
        with zipfile.ZipFile(folder / "tables.npz") as archive:
            for member in archive.namelist():
                with archive.open(member) as handle:
                    header = handle.read(128)
                assert b"'descr': '|O'" not in header, f"{member} is an object (pickled) array"
        with np.load(folder / "tables.npz", allow_pickle=False) as arrays:
            assert len(arrays.files) == len(space.item_features) + len(space.user_features)
        assert_same_space(FeatureSpace.load(folder), space)


def test_round_trip_keeps_non_ascii_ids_and_titles(tmp_path):
    items = pd.DataFrame({"title": ["Café (1995)", "日本 2"]}, index=pd.Index(["é1", "日"], name="item_id"))
    schema = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item"),
                     Feature("title", "text", "item")])
    dataset = Dataset("nonascii", pd.DataFrame({"user_id": ["ü"], "item_id": ["日"]}), schema, items=items,
                      item_title_feature="title")
    space = FeatureSpace.build(dataset)
    space.save(tmp_path)
    loaded = FeatureSpace.load(tmp_path)
    assert_same_space(loaded, space)
    assert loaded.item_titles == ["Café (1995)", "日本 2"]
    assert loaded.item_vocab.lookup(["日"]).tolist() == [2]


def test_feature_table_cardinality():
    assert FeatureTable(FeatureKind.TEXT, np.zeros((3, 4), np.int32), ["a", "b"]).cardinality == 4
    assert FeatureTable(FeatureKind.CATEGORICAL, np.zeros(3, np.int32), ["a", "b"]).cardinality == 3
    assert FeatureTable(FeatureKind.MULTI_CATEGORICAL, np.zeros((3, 5), np.float32), list("abcde")).cardinality == 5


def test_integer_ids_are_rejected_or_converted():
    schema = Schema([Feature("user_id", "id", "user"), Feature("item_id", "id", "item")])
    interactions = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [3, 4, 3]})
    try:
        dataset = Dataset("ints", interactions, schema)
    except DataError:
        return
    space = FeatureSpace.build(dataset)
    assert (space.item_vocab.lookup(dataset.interactions["item_id"]) > 0).all()
    assert (space.user_vocab.lookup(dataset.interactions["user_id"]) > 0).all()
