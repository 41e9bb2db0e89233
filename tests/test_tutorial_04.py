"""The serving tutorial runs top to bottom on tiny synthetic data and shows what it promises."""

import pytest
from notebooks import execute_tutorial


@pytest.mark.slow
def test_serving_notebook_runs(tmp_path):
    text = execute_tutorial("04_serving.ipynb", tmp_path).text
    assert "lstm_two_tower/1/saved_model.pb" in text and 'base_path: "/models/lstm_two_tower"' in text
    assert "signature_def['retrieve']:" in text and "dtype: DT_STRING" in text  # saved_model_cli show --all
    assert "tf_serving_warmup_requests" in text and text.count("retrieve ") >= 1
    assert '"instances": [{"user_id":' in text and '"inputs": {"user_id":' in text
    assert "curl -s -X POST http://localhost:8501/v1/models/lstm_two_tower:predict" in text
    assert 'signature_name: "retrieve"' in text and "dtype: DT_STRING" in text  # the gRPC PredictRequest
    assert "docker run --gpus all -p 8500:8500 -p 8501:8501 -v" in text and "tensorflow/serving:latest-gpu" in text
    assert "REST row, REST columnar and gRPC requests give the same answer: True" in text
    assert ": servable" in text and "warm-up: 5/5 records ran" in text
    assert "new film has a content embedding of norm 1.0" in text
