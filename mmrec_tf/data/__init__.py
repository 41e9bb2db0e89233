"""Datasets, schemas, splits, feature spaces and tf.data pipelines."""

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace, FeatureTable, tokenize
from mmrec_tf.data.hashed_vocabulary import HashedVocabulary
from mmrec_tf.data.item_feature_table import ItemFeatureTable, ItemFeatureTableError, build_item_feature_table
from mmrec_tf.data.labels import build_rating_examples, label_by_threshold, label_from_column, sample_negatives
from mmrec_tf.data.pipeline import Examples, build_examples, item_frequencies, make_tf_dataset, seen_items
from mmrec_tf.data.preprocessor import Preprocessor
from mmrec_tf.data.schema import Feature, FeatureKind, FeatureRole, Schema
from mmrec_tf.data.sources import DATASET_NAMES, load_dataset
from mmrec_tf.data.splits import (Split, cold_start_split, leave_last_out, make_split, predefined_split, random_split,
                                  temporal_fraction_split)
from mmrec_tf.data.user_buckets import with_user_buckets
from mmrec_tf.data.vocabulary import Vocabulary

__all__ = [
    "DATASET_NAMES", "Dataset", "Examples", "Feature", "FeatureKind", "FeatureRole", "FeatureSpace",
    "FeatureTable", "HashedVocabulary", "ItemFeatureTable", "ItemFeatureTableError", "Preprocessor", "Schema", "Split",
    "Vocabulary", "build_examples", "build_item_feature_table", "build_rating_examples", "cold_start_split",
    "item_frequencies", "label_by_threshold", "label_from_column", "leave_last_out", "load_dataset",
    "make_split", "make_tf_dataset", "predefined_split", "random_split", "sample_negatives", "seen_items",
    "temporal_fraction_split", "tokenize", "with_user_buckets",
]
