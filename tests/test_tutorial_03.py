"""Tutorial 03 runs top to bottom on tiny synthetic data: posters, fusion models, warm vs cold, attention."""

import re

import pytest
from notebooks import execute_tutorial


@pytest.mark.slow
def test_multimodal_fusion_notebook_runs(tmp_path):
    executed = execute_tutorial("03_multimodal_fusion.ipynb", tmp_path)
    text = executed.text
    assert "cold items in train: 0" in text
    rows = {name: [float(v) for v in values.split()]
            for name, values in re.findall(r"^(\w+|random \(expected\))\s+([0-9. ]+)$", text, re.MULTILINE)}
    assert {"popularity", "content_only", "concat_fusion", "cross_attention_fusion", "random (expected)"} <= set(rows)
    random = rows["random (expected)"]
    for name in ("concat_fusion", "cross_attention_fusion"):
        warm, cold_among_cold, cold_among_all = rows[name]
        assert warm > 2 * random[0] and cold_among_cold > random[1] and cold_among_all > random[2], (name, rows)
    assert rows["popularity"][2] == 0.0, "popularity never ranks a cold item above a trained one"
    id_weights = re.search(r"cold candidates' id weights: \[([^\]]*)\]", text).group(1)
    assert [float(v) for v in id_weights.split(",")] == [0.0, 0.0, 0.0]
    assert len(executed.png_images) == 3 and all(image.startswith(b"\x89PNG") for image in executed.png_images)
