"""Datasets, schemas, splits, feature spaces and tf.data pipelines."""

from mmrec_tf.data.dataset import Dataset
from mmrec_tf.data.feature_space import FeatureSpace, FeatureTable, tokenize
from mmrec_tf.data.item_feature_table import ItemFeatureTable, ItemFeatureTableError, build_item_feature_table
from mmrec_tf.data.pipeline import Examples, build_examples, item_frequencies, make_tf_dataset, seen_items
from mmrec_tf.data.schema import Feature, FeatureKind, FeatureRole, Schema
from mmrec_tf.data.sources import DATASET_NAMES, load_dataset
from mmrec_tf.data.splits import Split, leave_last_out, make_split, predefined_split, random_split
from mmrec_tf.data.vocabulary import Vocabulary

__all__ = [
    "DATASET_NAMES", "Dataset", "Examples", "Feature", "FeatureKind", "FeatureRole", "FeatureSpace",
    "FeatureTable", "ItemFeatureTable", "ItemFeatureTableError", "Schema", "Split", "Vocabulary", "build_examples", "build_item_feature_table", "item_frequencies", "leave_last_out",
    "load_dataset", "make_split", "make_tf_dataset", "predefined_split", "random_split", "seen_items", "tokenize",
]
