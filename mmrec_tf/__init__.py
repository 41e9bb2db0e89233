"""mmrec_tf: a Keras 3 / TensorFlow model zoo for multimodal recommendation.

The public names below are imported on first use (PEP 562 module
``__getattr__``), so ``import mmrec_tf`` and ``mmrec list`` / ``mmrec --help``
do not import TensorFlow (about 6 s of CPU).

Example:
>>> import mmrec_tf
>>> data = mmrec_tf.prepare_data(mmrec_tf.load_dataset("synthetic", num_users=30, num_items=20, num_clusters=2))
>>> model = mmrec_tf.create_model("two_tower", space=data.space, embedding_dim=8)
>>> "lstm_two_tower" in mmrec_tf.list_models()
True
"""

import importlib

__version__ = "0.1.0"

_PUBLIC_MODULES = {
    "mmrec_tf.data": ("Dataset", "Feature", "FeatureSpace", "Schema", "Split", "load_dataset"),
    "mmrec_tf.errors": ("ConfigError", "DataError"),
    "mmrec_tf.evaluation": ("ColdStartReport", "PointwiseReport", "RetrievalReport", "evaluate_cold_start",
                            "evaluate_ranking", "evaluate_retrieval"),
    "mmrec_tf.experiment": ("PreparedData", "RunResult", "load_run", "prepare_data", "run", "save_run"),
    "mmrec_tf.export.saved_model": ("export_model",),
    "mmrec_tf.registry": ("create_model", "list_models", "register_model"),
    "mmrec_tf.report": ("build_report", "write_report"),
    "mmrec_tf.training": ("TrainingConfig", "make_strategy", "train_model"),
    "mmrec_tf.zoo_entry": ("ZooEntry", "get_zoo_entry"),
}
_MODULE_OF = {name: module for module, names in _PUBLIC_MODULES.items() for name in names}

__all__ = [
    "ColdStartReport", "ConfigError", "DataError", "Dataset", "Feature", "FeatureSpace", "PointwiseReport",
    "PreparedData", "RetrievalReport", "RunResult", "Schema", "Split", "TrainingConfig", "ZooEntry", "build_report",
    "create_model", "evaluate_cold_start", "evaluate_ranking", "evaluate_retrieval", "export_model", "get_zoo_entry",
    "list_models", "load_dataset", "load_run", "make_strategy", "prepare_data", "register_model", "run", "save_run",
    "train_model", "write_report", "__version__",
]


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'mmrec_tf' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})
