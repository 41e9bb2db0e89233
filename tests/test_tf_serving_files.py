"""Warm-up records, models.config, batching parameters and the docker command."""

import os
import shlex
import shutil

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from mmrec_tf.export.tf_serving import (
    BATCHING_PARAMETERS_FILENAME,
    MODELS_CONFIG_FILENAME,
    WARMUP_RELATIVE_PATH,
    docker_command,
    read_warmup_requests,
    write_batching_parameters,
    write_models_config,
    write_warmup_requests,
)

ITEMS = ["", "i1", "i2", "i3"]
ITEM_VECTORS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, -1.0]], np.float32)
USER_VECTORS = {"u1": np.array([0.5, 1.0], np.float32)}  # unknown users -> zeros

STRING_VECTOR = tf.TensorSpec([None], tf.string)
STRING_MATRIX = tf.TensorSpec([None, None], tf.string)


class ScoreModel(tf.Module):
    """score(user_id, history, candidates) = <user + sum(history), candidate>."""

    def __init__(self):
        super().__init__()
        self.items = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(ITEMS, tf.range(len(ITEMS), dtype=tf.int64)), 0
        )
        self.users = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(["u1"], tf.constant([1], tf.int64)), 0
        )
        self.item_vectors = tf.Variable(ITEM_VECTORS)
        self.user_vectors = tf.Variable(np.stack([np.zeros(2, np.float32), USER_VECTORS["u1"]]))

    @tf.function(input_signature=[STRING_VECTOR, STRING_MATRIX, STRING_MATRIX])
    def score(self, user_id, history, candidates):
        user = tf.gather(self.user_vectors, self.users.lookup(user_id))
        user += tf.reduce_sum(tf.gather(self.item_vectors, self.items.lookup(history)), axis=1)
        candidate_vectors = tf.gather(self.item_vectors, self.items.lookup(candidates))
        return {"scores": tf.einsum("bd,bcd->bc", user, candidate_vectors)}


def expected_scores(user_ids, histories, candidates):
    index = {item: i for i, item in enumerate(ITEMS)}
    rows = []
    for user_id, history, row in zip(user_ids, histories, candidates, strict=True):
        user = USER_VECTORS.get(user_id, np.zeros(2, np.float32)) + sum(
            ITEM_VECTORS[index.get(item, 0)] for item in history
        )
        rows.append([float(user @ ITEM_VECTORS[index.get(item, 0)]) for item in row])
    return np.array(rows, np.float32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("score_model") / "1"
    module = ScoreModel()
    tf.saved_model.save(module, str(path), signatures={"score": module.score})
    return path


@pytest.fixture
def version_dir(model_dir, tmp_path):
    copy = tmp_path / "1"
    shutil.copytree(model_dir, copy)
    return copy


REQUESTS = [
    ("score", {"user_id": ["u1", "u9"], "history": [["i1", ""], ["i2", "i3"]],
               "candidates": np.array([["i1", "i2", "i3"], ["i3", "zz", "i1"]])}),
    ("score", {"user_id": np.array([b"u1"]), "history": [["i3", "i3"]], "candidates": [["i2", ""]]}),
]


def test_warmup_file_holds_prediction_logs_that_read_back(version_dir):
    path = write_warmup_requests(version_dir, REQUESTS, model_name="din")

    assert path == version_dir / WARMUP_RELATIVE_PATH
    assert path.relative_to(version_dir).as_posix() == "assets.extra/tf_serving_warmup_requests"
    logs = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        logs.append(log)
    assert len(logs) == 2
    request = logs[0].predict_log.request
    assert request.model_spec.name == "din"
    assert request.model_spec.signature_name == "score"
    assert sorted(request.inputs) == ["candidates", "history", "user_id"]
    assert request.inputs["history"].dtype == tf.string.as_datatype_enum
    assert [d.size for d in request.inputs["candidates"].tensor_shape.dim] == [2, 3]

    read_back = read_warmup_requests(version_dir)
    assert [name for name, _ in read_back] == ["score", "score"]
    assert read_back[0][1]["history"].tolist() == [["i1", ""], ["i2", "i3"]]
    assert read_back[0][1]["candidates"].tolist() == [["i1", "i2", "i3"], ["i3", "zz", "i1"]]
    assert read_back[1][1]["user_id"].tolist() == ["u1"]
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())


def test_warmup_requests_run_on_the_saved_model(version_dir):
    write_warmup_requests(version_dir, REQUESTS)
    score = tf.saved_model.load(str(version_dir)).signatures["score"]

    for _, inputs in read_warmup_requests(version_dir):
        result = score(**{name: tf.constant(value) for name, value in inputs.items()})["scores"]
        want = expected_scores(inputs["user_id"], inputs["history"], inputs["candidates"])
        np.testing.assert_allclose(result.numpy(), want, rtol=1e-6)


@pytest.mark.parametrize(
    "requests, message",
    [
        ([("score", {"user_id": ["u1"], "history": [["i1"]]})], "do not match the signature's inputs"),
        ([("score", {"user_id": [1], "history": [["i1"]], "candidates": [["i1"]]})], "dtype int32"),
        ([("score", {"user_id": ["u1"], "history": ["i1"], "candidates": [["i1"]]})], "rank 1"),
        ([("retrieve", {"user_id": ["u1"]})], "signature 'retrieve' is not in"),
        ([("score", {"user_id": ["u1"], "history": [["i1"], ["i1", "i2"]], "candidates": [["a"]]})],
         "input 'history': cannot be turned into a tensor"),
        ([], "1 to 1000"),
        ([("score", {"user_id": ["u1"], "history": [["i1"]], "candidates": [["i1"]]})] * 1001, "1 to 1000"),
        ([("", {"user_id": ["u1"]})], "non-empty str"),
        (["score"], "must be a \\(signature_name, inputs\\) tuple"),
    ],
)
def test_bad_warmup_requests_raise_and_write_nothing(version_dir, requests, message):
    with pytest.raises(ValueError, match=message):
        write_warmup_requests(version_dir, requests)
    assert not (version_dir / "assets.extra").exists()


def test_warmup_without_saved_model_is_written_unchecked(tmp_path):
    write_warmup_requests(tmp_path, [("anything", {"x": np.arange(6, dtype=np.int64).reshape(2, 3)})])
    ((name, inputs),) = read_warmup_requests(tmp_path)
    assert name == "anything"
    assert inputs["x"].dtype == np.int64
    np.testing.assert_array_equal(inputs["x"], [[0, 1, 2], [3, 4, 5]])
    with pytest.raises(FileNotFoundError, match="no warm-up file"):
        read_warmup_requests(tmp_path / "elsewhere")


def test_models_config_parses_as_model_server_config(tmp_path):
    for name in ("din", "two_tower"):
        (tmp_path / name / "3").mkdir(parents=True)

    path = write_models_config(tmp_path, ["din", "two_tower"])

    assert path == tmp_path / MODELS_CONFIG_FILENAME
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    entries = [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config]
    assert entries == [
        ("din", "/models/din", "tensorflow"),
        ("two_tower", "/models/two_tower", "tensorflow"),
    ]


@pytest.mark.parametrize(
    "names, message",
    [
        ([], "empty"),
        (["din", "din"], "duplicates"),
        (["a/b"], "folder name"),
        (["missing"], "no integer version"),
    ],
)
def test_models_config_rejects_bad_names(tmp_path, names, message):
    (tmp_path / "din" / "1").mkdir(parents=True)
    with pytest.raises(ValueError, match=message):
        write_models_config(tmp_path, names)
    assert not (tmp_path / MODELS_CONFIG_FILENAME).exists()


def batching_parameters_class():
    """BatchingParameters as declared in TF Serving's servables/tensorflow/session_bundle_config.proto."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb))
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="batching_test.proto", package="batching_test", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = file_proto.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    for number, name in enumerate(
        ["max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"], start=1
    ):
        message.field.add(name=name, number=number, type=field.TYPE_MESSAGE,
                          label=field.LABEL_OPTIONAL, type_name=".google.protobuf.Int64Value")
    message.field.add(name="thread_pool_name", number=5, type=field.TYPE_MESSAGE,
                      label=field.LABEL_OPTIONAL, type_name=".google.protobuf.StringValue")
    message.field.add(name="allowed_batch_sizes", number=6, type=field.TYPE_INT64, label=field.LABEL_REPEATED)
    message.field.add(name="pad_variable_length_inputs", number=7, type=field.TYPE_BOOL,
                      label=field.LABEL_OPTIONAL)
    pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("batching_test.BatchingParameters"))


def test_batching_parameters_parse_as_batching_parameters_proto(tmp_path):
    parameters_class = batching_parameters_class()

    path = write_batching_parameters(tmp_path / BATCHING_PARAMETERS_FILENAME)
    parsed = text_format.Parse(path.read_text(), parameters_class())
    assert parsed.max_batch_size.value == 256
    assert parsed.batch_timeout_micros.value == 2000
    assert parsed.num_batch_threads.value == os.cpu_count()
    assert parsed.max_enqueued_batches.value == 100
    assert list(parsed.allowed_batch_sizes) == []
    assert parsed.pad_variable_length_inputs is False

    path = write_batching_parameters(
        tmp_path / "custom.txt", max_batch_size=64, batch_timeout_micros=0, num_batch_threads=3,
        max_enqueued_batches=3, allowed_batch_sizes=[16, 32, 64],
    )
    parsed = text_format.Parse(path.read_text(), parameters_class())
    assert (parsed.max_batch_size.value, parsed.batch_timeout_micros.value) == (64, 0)
    assert (parsed.num_batch_threads.value, parsed.max_enqueued_batches.value) == (3, 3)
    assert list(parsed.allowed_batch_sizes) == [16, 32, 64]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"batch_timeout_micros": -1}, "batch_timeout_micros"),
        ({"num_batch_threads": 2.5}, "num_batch_threads"),
        ({"allowed_batch_sizes": [32, 16, 256]}, "allowed_batch_sizes"),
        ({"allowed_batch_sizes": [16, 128]}, "end with max_batch_size=256"),
    ],
)
def test_batching_parameters_reject_bad_values(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_batching_parameters(tmp_path / "b.txt", **kwargs)
    assert not (tmp_path / "b.txt").exists()


def test_docker_command_mounts_saved_models_and_passes_documented_flags(tmp_path):
    saved_models = tmp_path / "saved models"
    (saved_models / "din" / "1").mkdir(parents=True)
    write_models_config(saved_models, ["din"])
    with pytest.raises(FileNotFoundError, match=BATCHING_PARAMETERS_FILENAME):
        docker_command(saved_models)
    write_batching_parameters(saved_models / BATCHING_PARAMETERS_FILENAME)

    command = docker_command(saved_models)

    assert shlex.split(command) == [
        "docker", "run", "--gpus", "all", "-p", "8500:8500", "-p", "8501:8501",
        "-v", f"{saved_models.resolve()}:/models", "-t", "tensorflow/serving:latest-gpu",
        "--model_config_file=/models/models.config",
        "--enable_batching", "--batching_parameters_file=/models/batching_parameters.txt",
    ]
    cpu = shlex.split(docker_command(saved_models, gpu=False, batching=False, rest_port=9001))
    assert "--gpus" not in cpu and "--enable_batching" not in cpu
    assert "tensorflow/serving:latest" in cpu and "9001:8501" in cpu
    with pytest.raises(FileNotFoundError, match=MODELS_CONFIG_FILENAME):
        docker_command(tmp_path)
