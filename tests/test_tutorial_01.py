"""The quickstart tutorial runs top to bottom (on tiny synthetic data) and tells the right story."""

import re

import pytest
from notebooks import execute_tutorial


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path):
    text = execute_tutorial("01_quickstart.ipynb", tmp_path).text
    hr = {name: float(value) for name, value in re.findall(r"^(\w+)\s+HR@10=([0-9.]+)", text, re.MULTILINE)}
    assert set(hr) == {"popularity", "two_tower", "lstm_two_tower"}
    assert hr["lstm_two_tower"] > hr["popularity"] and hr["two_tower"] > hr["popularity"]
    assert "'retrieve'" in text and '"signature_name": "retrieve"' in text
