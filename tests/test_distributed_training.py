"""Training under tf.distribute: loss scaling and per-replica negatives, multi-worker export, chief-only writes."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmrec_tf.cli import main
from mmrec_tf.training import (ChiefBackupAndRestore, StrategyError, chief_output, is_chief, make_strategy,
                               resolve_jit_compile)

QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}

MIRRORED_SCRIPT = textwrap.dedent("""
    import json
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    import numpy as np
    from mmrec_tf.data import load_dataset
    from mmrec_tf.data.labels import label_by_threshold
    from mmrec_tf.experiment import prepare_data
    from mmrec_tf.models import EmbeddingMLP, TwoTower
    from mmrec_tf.training import TrainingConfig, train_model

    class LossLog(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.losses = []

        def on_train_batch_end(self, batch, logs=None):
            self.losses.append(float(logs["loss"]))

    class PerHalfTwoTower(TwoTower):
        # One device computing what two replicas compute: in-batch softmax within each half of the batch, summed.
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            half = keras.ops.shape(y_pred["user_embedding"])[0] // 2
            users, items = y_pred["user_embedding"], y_pred["item_embedding"]
            return self.task(users[:half], items[:half]) + self.task(users[half:], items[half:])

    data = prepare_data(load_dataset("synthetic", num_users=64, num_items=30, num_clusters=4,
                                     interactions_per_user=10), max_history=4)
    train = data.examples["train"]
    assert len(train) % 64 == 0, len(train)
    config = TrainingConfig(epochs=2, batch_size=64, learning_rate=0.5, optimizer="sgd", seed=1)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def trained(make, examples, distributed):
        keras.utils.set_random_seed(0)
        if distributed:
            with strategy.scope():
                model = make()
                model.build()
        else:
            model = make()
            model.build()
        model.set_weights(start[make])
        log = LossLog()
        train_model(model, examples, config, callbacks=[log], verbose=0, strategy=strategy if distributed else None)
        return {"losses": log.losses, "weights": [w.tolist() for w in model.get_weights()],
                "replicas": strategy.num_replicas_in_sync if distributed else 1}

    two_tower = lambda: TwoTower(data.space.num_users, data.space.num_items, embedding_dim=8)
    per_half = lambda: PerHalfTwoTower(data.space.num_users, data.space.num_items, embedding_dim=8)
    ranker = lambda: EmbeddingMLP(data.space.num_users, data.space.num_items, embedding_dim=8, hidden_units=(8,),
                                  max_history=4)
    start = {}
    for make in (two_tower, ranker):
        keras.utils.set_random_seed(0)
        model = make()
        model.build()
        start[make] = model.get_weights()
    start[per_half] = start[two_tower]
    labelled = label_by_threshold(train, threshold=4.0)
    print(json.dumps({
        "retrieval": {"mirrored": trained(two_tower, train, True), "per_half": trained(per_half, train, False),
                      "one_device": trained(two_tower, train, False)},
        "ranking": {"mirrored": trained(ranker, labelled, True), "one_device": trained(ranker, labelled, False)},
    }))
""")

WORKER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from mmrec_tf.data import load_dataset
    from mmrec_tf.experiment import prepare_data, run, save_run
    from mmrec_tf.export.saved_model import export_model
    from mmrec_tf.training import chief_output, is_chief, make_strategy

    shared = sys.argv[1]
    strategy = make_strategy("multi_worker")
    data = prepare_data(load_dataset("synthetic", num_users=40, num_items=20, num_clusters=2), max_history=4)
    result = run("two_tower", data, training={"epochs": 2, "batch_size": 32, "optimizer": "sgd",
                                              "learning_rate": 0.5},
                 verbose=0, strategy=strategy, checkpoint_dir=os.path.join(shared, "checkpoints"), embedding_dim=8)
    save_run(result, os.path.join(shared, "run"), {"dataset": "synthetic"})
    with chief_output(os.path.join(shared, "saved_models"), strategy) as target:
        version = export_model(result.model, data.space, target, "two_tower", k=5, warmup=False)
    print(json.dumps({"chief": is_chief(strategy), "replicas": strategy.num_replicas_in_sync,
                      "steps_per_execution": result.model.steps_per_execution,
                      "version": str(version), "hr@10": result.test.metrics["hr@10"],
                      "weights": [w.tolist() for w in result.model.get_weights()]}))
""")

SERVING_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf

    loaded = tf.saved_model.load(sys.argv[1])
    outputs = loaded.signatures["retrieve"](user_id=tf.constant(["u1", "nobody"]),
                                            history=tf.constant([["i1", "i2", ""], ["", "", ""]]))
    print(json.dumps({"item_ids": outputs["item_ids"].numpy().astype(str).tolist(),
                      "scores": outputs["scores"].numpy().tolist(),
                      "signatures": sorted(loaded.signatures),
                      "mmrec_imported": any(name.startswith("mmrec_tf") for name in sys.modules)}))
""")


def _run_script(script, *args, env=None, timeout=240):
    completed = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                               env={**os.environ, **QUIET, **(env or {})}, timeout=timeout)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def mirrored_runs():
    return _run_script(MIRRORED_SCRIPT)


def _flat(weights):
    return np.concatenate([np.ravel(np.asarray(w, np.float64)) for w in weights])


@pytest.mark.slow
def test_mirrored_retrieval_sums_per_replica_in_batch_softmax_losses(mirrored_runs):
    runs = mirrored_runs["retrieval"]
    assert runs["mirrored"]["replicas"] == 2
    assert len(runs["mirrored"]["losses"]) == 2 * 8
    # Tolerance: float32 summation order differs between one device and two replicas; 1e-5 relative.
    np.testing.assert_allclose(runs["mirrored"]["losses"], runs["per_half"]["losses"], rtol=1e-5)
    np.testing.assert_allclose(_flat(runs["mirrored"]["weights"]), _flat(runs["per_half"]["weights"]),
                               rtol=1e-4, atol=1e-6)
    # The first step's loss is the global-batch SUM (64 rows), not a per-replica or mean value:
    # at the shared start both halves' rows see 31 negatives, so the sum is ~64 * log(32).
    assert runs["mirrored"]["losses"][0] == pytest.approx(64 * np.log(32), rel=1e-2)
    # ... and the negatives really are per replica: one device's softmax over all 64 rows differs.
    assert runs["one_device"]["losses"][0] == pytest.approx(64 * np.log(64), rel=1e-2)


@pytest.mark.slow
def test_mirrored_ranking_loss_trajectory_matches_one_device(mirrored_runs):
    runs = mirrored_runs["ranking"]
    np.testing.assert_allclose(runs["mirrored"]["losses"], runs["one_device"]["losses"], rtol=1e-4)
    # the loss is an average over the global batch: two replicas take the step one device takes
    np.testing.assert_allclose(_flat(runs["mirrored"]["weights"]), _flat(runs["one_device"]["weights"]), atol=1e-5)


@pytest.mark.slow
def test_multi_worker_training_exports_once_from_the_chief_and_serves(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, str(shared)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, **QUIET, "TF_CONFIG": json.dumps(tf_config)}))
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=240)
            assert process.returncode == 0, stderr[-3000:]
            outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    chief, other = outputs
    assert (chief["chief"], other["chief"]) == (True, False)
    assert chief["replicas"] == other["replicas"] == 2
    # Keras 3.15's multi-step loop fails under MultiWorkerMirroredStrategy ("You must feed a value for
    # placeholder tensor ... multi_step_on_iterator"): "auto" must keep one step per call here.
    assert chief["steps_per_execution"] == other["steps_per_execution"] == 1
    np.testing.assert_array_equal(_flat(chief["weights"]), _flat(other["weights"]))
    assert chief["version"] == str(shared / "saved_models" / "two_tower" / "1")
    assert not os.path.exists(other["version"]), "the non-chief's scratch export is removed"
    assert [p.name for p in (shared / "saved_models" / "two_tower").iterdir()] == ["1"]
    record = json.loads((shared / "run" / "run.json").read_text())
    assert record["distribution"] == {"strategy": "multi_worker", "replicas": 2}
    assert not (shared / "checkpoints").exists(), "the chief removes its checkpoints when training completes"

    served = _run_script(SERVING_SCRIPT, shared / "saved_models" / "two_tower" / "1")
    assert not served["mmrec_imported"]
    assert {"retrieve", "score", "user_embedding", "item_embedding", "serving_default"} <= set(served["signatures"])
    assert np.asarray(served["item_ids"]).shape == (2, 5)
    assert "i1" not in served["item_ids"][0] and "i2" not in served["item_ids"][0], "history items are excluded"
    assert (np.diff(np.asarray(served["scores"]), axis=1) <= 0).all(), "best first"


def _worker(index: int, jobs: dict):
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(jobs), task_type="worker", task_id=index)
    return types.SimpleNamespace(cluster_resolver=resolver)


def test_chief_is_worker_zero_unless_the_cluster_has_a_chief():
    workers = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    assert is_chief(None) and is_chief(_worker(0, workers)) and not is_chief(_worker(1, workers))
    assert not is_chief(_worker(0, {**workers, "chief": ["127.0.0.1:3"]}))


def test_chief_output_sends_non_chief_writes_to_a_removed_scratch_folder(tmp_path):
    workers = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    with chief_output(tmp_path / "run", _worker(0, workers)) as target:
        assert target == tmp_path / "run"
    with chief_output(tmp_path / "run", _worker(1, workers)) as target:
        assert target.name == "run" and tmp_path not in target.parents
        target.mkdir()
        (target / "model.keras").write_text("x")
        scratch = target
    assert not scratch.exists()
    assert not (tmp_path / "run").exists()


def test_non_chief_backup_callback_writes_nothing_into_the_shared_folder(tmp_path, tiny_space, tiny_examples):
    from mmrec_tf.registry import create_model
    from mmrec_tf.training import TrainingConfig, train_model

    workers = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    callback = ChiefBackupAndRestore(tmp_path / "checkpoints", _worker(1, workers))
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((sorted(os.listdir(callback.scratch)), (tmp_path / "checkpoints").exists()))

    model = create_model("two_tower", space=tiny_space, embedding_dim=4)
    train_model(model, tiny_examples["train"], TrainingConfig(epochs=2, batch_size=64), callbacks=[callback, Watch()],
                verbose=0)
    assert seen == [(["epoch-000001"], False), (["epoch-000001", "epoch-000002"], False)]
    assert not os.path.exists(callback.scratch)


def _trained_weights(space, examples, **speed):
    from mmrec_tf.registry import create_model
    from mmrec_tf.training import TrainingConfig, train_model

    keras.utils.set_random_seed(0)
    model = create_model("two_tower", space=space, embedding_dim=4, logq_correction=True)
    train_model(model, examples, TrainingConfig(epochs=2, batch_size=16, learning_rate=0.05, **speed), verbose=0)
    return model, _flat(model.get_weights())


def test_auto_speed_settings_do_not_change_the_trained_weights(tiny_space, tiny_examples):
    train = tiny_examples["train"]
    plain, reference = _trained_weights(tiny_space, train, jit_compile=False, steps_per_execution=1)
    several, same_steps = _trained_weights(tiny_space, train, jit_compile=False)
    fused, default = _trained_weights(tiny_space, train)
    assert (plain.steps_per_execution, several.steps_per_execution) == (1, 30)
    assert (fused.jit_compile, fused.steps_per_execution) == (True, 30)
    np.testing.assert_array_equal(same_steps, reference)
    np.testing.assert_allclose(default, reference, rtol=1e-5, atol=1e-6)


def test_auto_steps_per_execution_keeps_every_batch_for_batch_callbacks():
    from mmrec_tf.training import resolve_steps_per_execution

    class EveryBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    class EveryEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    assert resolve_steps_per_execution("auto", [EveryEpoch()], steps=128) == 32
    assert resolve_steps_per_execution("auto", [EveryEpoch()], steps=100) == 32  # a last call of 4
    assert resolve_steps_per_execution("auto", [EveryEpoch()], steps=79) == 32  # prime: a last call of 15
    assert resolve_steps_per_execution("auto", [EveryEpoch()], steps=7) == 7
    assert resolve_steps_per_execution("auto", [EveryEpoch(), EveryBatch()], steps=100) == 1
    assert resolve_steps_per_execution("auto", [keras.callbacks.LambdaCallback(on_batch_end=print)], steps=100) == 1
    assert resolve_steps_per_execution("auto", [], 100, types.SimpleNamespace(num_replicas_in_sync=2)) == 1
    one_replica_per_worker = _worker(0, {"worker": ["127.0.0.1:1", "127.0.0.1:2"]})
    one_replica_per_worker.num_replicas_in_sync = 1
    assert resolve_steps_per_execution("auto", [], 100, one_replica_per_worker) == 1
    assert resolve_steps_per_execution(5, [EveryBatch()], steps=100) == 5
    assert resolve_steps_per_execution(5, [], steps=79) == 5


def test_every_epoch_trains_exactly_its_batches_with_several_steps_per_execution(tiny_space, tiny_examples):
    """Keras runs whole executions on a stream of epochs; train_model gives it one epoch at a time instead."""
    from mmrec_tf.registry import create_model
    from mmrec_tf.training import TrainingConfig, steps_per_epoch, train_model

    train = tiny_examples["train"]
    # more batches than AUTO_STEPS_PER_EXECUTION and not a multiple of it: min(32, steps) would not divide them
    batch_size = max(size for size in range(1, 64)
                     if steps_per_epoch(len(train), size) > 32 and steps_per_epoch(len(train), size) % 32)
    steps = steps_per_epoch(len(train), batch_size)
    model = create_model("two_tower", space=tiny_space, embedding_dim=4)
    updates_after_epoch = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: updates_after_epoch.append(int(model.optimizer.iterations.numpy())))
    train_model(model, train, TrainingConfig(epochs=3, batch_size=batch_size), callbacks=[record], verbose=0)
    assert model.steps_per_execution > 1
    assert updates_after_epoch == [steps, 2 * steps, 3 * steps]


def test_auto_jit_is_off_under_a_multi_replica_strategy():
    model = types.SimpleNamespace(_flatten_layers=lambda: [])
    assert resolve_jit_compile("auto", model) is True
    assert resolve_jit_compile("auto", model, types.SimpleNamespace(num_replicas_in_sync=2, cluster_resolver=None)) \
        is False
    assert resolve_jit_compile(True, model, types.SimpleNamespace(num_replicas_in_sync=2)) is True


@pytest.mark.parametrize("name, tf_config, message", [
    ("multi_worker", None, "needs the TF_CONFIG environment variable"),
    ("multi_worker", "{not json", "TF_CONFIG is not valid JSON"),
    ("multi_worker", {"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}},
     "names no task of the cluster"),
    ("parameter_server", {"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}},
     "has no ps or chief job"),
    ("parameter_server", {"cluster": {"worker": ["127.0.0.1:1"], "ps": ["127.0.0.1:2"], "chief": ["127.0.0.1:3"]},
                          "task": {"type": "chief", "index": 0}}, "cannot drive tf.distribute.ParameterServerStrategy"),
    ("bogus", None, "unknown strategy"),
])
def test_strategy_arguments_are_validated(monkeypatch, name, tf_config, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", tf_config if isinstance(tf_config, str) else json.dumps(tf_config))
    with pytest.raises(StrategyError, match=message):
        make_strategy(name)


def test_cli_train_strategy_errors_are_reported(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code = main(["train", "two_tower", "--data", "synthetic", "--strategy", "multi_worker",
                 "--run-dir", str(tmp_path / "run")])
    assert code == 2
    assert "needs the TF_CONFIG environment variable" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_train_with_mirrored_strategy_records_it(tmp_path, capsys):
    code = main(["train", "two_tower", "--data", "synthetic", "--strategy", "mirrored", "--epochs", "1",
                 "--run-dir", str(tmp_path / "run"), "--set", "embedding_dim=4"])
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["distribution"] == {"strategy": "mirrored", "replicas": 1}, "one CPU device here"
