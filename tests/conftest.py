"""Shared test fixtures: a tiny synthetic dataset and what is built from it, and real-data lookup.

The synthetic fixtures are session-scoped (built once per test run): tests must
treat them as read-only. Tests that need ``../shared/data`` (or
``$MMREC_SHARED_DATA``) are marked ``real_data`` and take the
``real_movielens_dir`` fixture, which skips with the path it looked at when the
data is absent.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402  (TF_CPP_MIN_LOG_LEVEL must be set before TensorFlow loads)

import pytest  # noqa: E402

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
TINY_MAX_HISTORY = 6
TINY_SIZES = {"num_users": 60, "num_items": 40, "num_clusters": 4, "interactions_per_user": 10, "seed": 0}


def shared_data_dir() -> Path:
    """``$MMREC_SHARED_DATA`` if set, else ``shared/data`` next to the repository folder."""
    return Path(os.environ.get("MMREC_SHARED_DATA") or REPOSITORY_ROOT.parent / "shared" / "data")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "real_data: needs ../shared/data (or $MMREC_SHARED_DATA); skipped with a reason when absent",
    )


def pytest_collection_modifyitems(config, items):
    """Skip every ``real_data`` test up front when the shared data folder does not exist at all."""
    folder = shared_data_dir()
    if folder.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real data folder {folder} not found (set MMREC_SHARED_DATA)")
    for item in items:
        if "real_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def real_movielens_dir() -> Path:
    """The GroupLens ml-100k folder under the shared data folder; skips when absent."""
    folder = shared_data_dir() / "ml-100k"
    missing = [name for name in ("u.data", "u.item", "u.user") if not (folder / name).is_file()]
    if missing:
        pytest.skip(f"MovieLens-100K not found: {folder} lacks {missing} (set MMREC_SHARED_DATA)")
    return folder


@pytest.fixture(scope="session")
def tiny_dataset():
    """60 users × 40 items in 4 clusters, 10 interactions each (read-only)."""
    from mmrec_tf.data.sources.synthetic import make_synthetic

    return make_synthetic(**TINY_SIZES)


@pytest.fixture(scope="session")
def tiny_space(tiny_dataset):
    from mmrec_tf.data.feature_space import FeatureSpace

    return FeatureSpace.build(tiny_dataset)


@pytest.fixture(scope="session")
def tiny_split(tiny_dataset):
    from mmrec_tf.data.splits import leave_last_out

    return leave_last_out(tiny_dataset)


@pytest.fixture(scope="session")
def tiny_examples(tiny_split, tiny_space):
    """``{"train", "valid", "test"}`` examples with histories of at most ``TINY_MAX_HISTORY`` items."""
    from mmrec_tf.data.pipeline import build_examples

    return build_examples(tiny_split, tiny_space, max_history=TINY_MAX_HISTORY)
