"""Tutorial 03 runs top to bottom on tiny synthetic data: posters, fusion models, warm vs cold, attention."""

import base64
import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "tutorials" / "03_multimodal_fusion.ipynb"


def test_the_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_multimodal_fusion_notebook_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("MMREC_TUTORIAL_TINY", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
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
    images = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3 and all(base64.b64decode(image).startswith(b"\x89PNG") for image in images)
