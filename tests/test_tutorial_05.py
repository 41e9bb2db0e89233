"""Tutorial 05 runs top to bottom on tiny synthetic data: attention by hand, LSTM vs SASRec, SASRec's attention maps."""

import re

import numpy as np
import pytest
from notebooks import execute_tutorial


@pytest.mark.slow
def test_lstm_to_self_attention_notebook_runs(tmp_path):
    executed = execute_tutorial("05_from_lstm_to_self_attention.ipynb", tmp_path)
    text = executed.text
    # the hand-written causal softmax: rows sum to 1
    assert "rows sum to [1. 1. 1. 1.]" in text
    hr = {name: float(value) for name, value in re.findall(r"^(\w+)\s+HR@10=([0-9.]+)", text, re.MULTILINE)}
    assert set(hr) == {"popularity", "lstm_two_tower", "sasrec"}
    # each tiny user walks a fixed cycle of their cluster's items: both sequence models learn the successor
    assert hr["lstm_two_tower"] > hr["popularity"] + 0.2 and hr["sasrec"] > hr["popularity"] + 0.2, hr
    # the model's attention maps: two blocks, each row a distribution, nothing above the diagonal
    blocks = re.findall(r"^block (\d): rows sum to ([0-9.]+)\.\.([0-9.]+), largest weight above the diagonal ([0-9.]+)",
                        text, re.MULTILINE)
    assert [b[0] for b in blocks] == ["0", "1"]
    for _, low, high, above in blocks:
        assert float(low) == float(high) == 1.0 and float(above) == 0.0
    last_row = re.search(r"what the user vector attended to\): \[([^\]]*)\]", text).group(1)
    assert np.isclose(sum(float(w) for w in last_row.split()), 1.0, atol=0.01)
    assert len(executed.png_images) == 1 and executed.png_images[0].startswith(b"\x89PNG")
