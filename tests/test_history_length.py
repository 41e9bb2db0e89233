"""A retrieval model given longer histories than it keeps reads only its most recent items, as serving does."""

import numpy as np
import pytest

import mmrec_tf
from mmrec_tf.data import FeatureSpace
from mmrec_tf.data.sources import make_synthetic
from mmrec_tf.model_registration import model_task_kind
from mmrec_tf.registry import create_model

SPACE = FeatureSpace.build(make_synthetic(num_users=4, num_items=9, num_clusters=3, interactions_per_user=6))
HISTORY_MODELS = [name for name, model in ((name, create_model(name, space=SPACE)) for name in mmrec_tf.list_models())
                  if model_task_kind(model).retrieves and hasattr(model, "max_history")]


def test_the_history_reading_retrieval_models_are_all_checked():
    assert sorted(HISTORY_MODELS) == ["concat_fusion", "content_only", "cross_attention_fusion", "lstm_two_tower",
                                      "sasrec"]


@pytest.mark.parametrize("name", HISTORY_MODELS)
def test_a_long_history_encodes_as_its_most_recent_items(name):
    model = create_model(name, space=SPACE, max_history=3)
    long = np.array([[3, 3, 3, 4, 4, 5], [7, 8, 0, 0, 0, 0]], np.int32)  # oldest first, 0-padded at the end
    recent = np.array([[4, 4, 5], [7, 8, 0]], np.int32)
    user_id = np.array([1, 2], np.int32)
    from_long = np.asarray(model.encode_users({"user_id": user_id, "history": long}))
    from_recent = np.asarray(model.encode_users({"user_id": user_id, "history": recent}))
    np.testing.assert_allclose(from_long, from_recent, atol=1e-6)
    older = np.asarray(model.encode_users({"user_id": user_id, "history": np.array([[3, 3, 3], [7, 8, 0]], np.int32)}))
    assert np.abs(older[0] - from_long[0]).max() > 1e-4  # the first row's older items would encode otherwise
