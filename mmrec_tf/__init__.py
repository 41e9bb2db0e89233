"""mmrec_tf: a Keras 3 / TensorFlow model zoo for multimodal recommendation.

Example:
>>> import mmrec_tf
>>> data = mmrec_tf.prepare_data(mmrec_tf.load_dataset("synthetic", num_users=30, num_items=20, num_clusters=2))
>>> model = mmrec_tf.create_model("two_tower", space=data.space, embedding_dim=8)
>>> "lstm_two_tower" in mmrec_tf.list_models()
True
"""

from mmrec_tf.data import Dataset, Feature, FeatureSpace, Schema, Split, load_dataset
from mmrec_tf.errors import ConfigError, DataError
from mmrec_tf.evaluation import ColdStartReport, RankingReport, evaluate_cold_start, evaluate_ranking, evaluate_retrieval
from mmrec_tf.experiment import PreparedData, RunResult, load_run, prepare_data, run, save_run
from mmrec_tf.export.saved_model import export_model
from mmrec_tf.registry import create_model, list_models, register_model
from mmrec_tf.training import TrainingConfig, make_strategy, train_model
from mmrec_tf.zoo_entry import ZooEntry, get_zoo_entry

__version__ = "0.1.0"

__all__ = [
    "ColdStartReport", "ConfigError", "DataError", "Dataset", "Feature", "FeatureSpace", "PreparedData",
    "RankingReport", "RunResult", "Schema", "Split", "TrainingConfig", "ZooEntry", "create_model",
    "evaluate_cold_start", "evaluate_ranking", "evaluate_retrieval", "export_model", "get_zoo_entry", "list_models",
    "load_dataset", "load_run", "make_strategy", "prepare_data", "register_model", "run", "save_run", "train_model",
    "__version__",
]
