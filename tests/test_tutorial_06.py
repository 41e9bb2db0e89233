"""Tutorial 06 runs top to bottom on tiny synthetic data: three models, beyond-accuracy table, group gaps, plots."""

import re

import pytest
from notebooks import execute_tutorial


@pytest.mark.slow
def test_fairness_notebook_runs(tmp_path):
    executed = execute_tutorial("06_fairness_and_beyond_accuracy.ipynb", tmp_path)
    text = executed.text
    assert "users table columns: ['segment']" in text
    trained = dict(re.findall(r"^(two_tower|lstm_two_tower|concat_fusion)\s+test HR@10 ([0-9.]+)$", text, re.M))
    assert set(trained) == {"two_tower", "lstm_two_tower", "concat_fusion"}
    header = re.search(r"^\s+two_tower\s+lstm_two_tower\s+concat_fusion$", text, re.M)
    assert header, "the beyond-accuracy table has one column per model"
    for metric in ("coverage", "gini", "long_tail_share", "novelty", "ild_genres", "calibration_kl"):
        assert re.search(rf"^{metric}\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+$", text, re.M), metric
    gap_rows = re.findall(r"^\s*(two_tower|lstm_two_tower|concat_fusion)\s+segment\s+s\d\s+s\d\s+([0-9.]+)\s+\[", text,
                          re.M)
    assert sorted(model for model, _ in gap_rows) == ["concat_fusion", "lstm_two_tower", "two_tower"]
    assert re.search(r"^tail:0\.9\s+HR@10 [0-9.]+ \([+-][0-9.]+\)\s+long-tail share", text, re.M)
    assert "because of" in text
    # one user-group figure (segment), the exposure figure, the re-ranking figure
    assert len(executed.png_images) == 3 and all(image.startswith(b"\x89PNG") for image in executed.png_images)
