"""Tutorial 07 runs top to bottom on tiny data: rolling strategies, one update, two versions compared."""

import re

import pytest
from notebooks import execute_tutorial


@pytest.mark.slow
def test_keeping_a_model_fresh_notebook_runs(tmp_path):
    executed = execute_tutorial("07_keeping_a_model_fresh.ipynb", tmp_path)
    text = executed.text
    assert "cut by time into 3 windows of [240, 240, 240] interactions" in text
    means = dict(re.findall(r"^(update|retrain|never): mean hr@10 ([0-9.]+)", text, re.MULTILINE))
    assert sorted(means) == ["never", "retrain", "update"]
    first_window = re.findall(r"^  window 2: hr@10=([0-9.]+)", text, re.MULTILINE)
    assert len(first_window) == 3 and len(set(first_window)) == 1, "window 2 is served by the window-1 model"
    assert len(executed.png_images) == 1 and executed.png_images[0].startswith(b"\x89PNG")
    assert "day 2 = day 1 + 240 new interactions; 10 new users, 15 new items" in text
    ratio = re.search(r"update reaches ([0-9.]+)% of retrain's mean HR@10", text).group(1)
    assert float(ratio) == pytest.approx(100 * float(means["update"]) / float(means["retrain"]), abs=0.2)
    assert "exported saved_models/lstm_two_tower/1" in text and "exported saved_models/lstm_two_tower/2" in text
    assert re.search(r"compare saved_models/lstm_two_tower/2 with saved_models/lstm_two_tower/1 \(retrieve, 8 "
                     r"warm-up rows\): top-10 overlap mean [01]\.\d\d", text)
