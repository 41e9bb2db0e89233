"""Tutorial 02 runs top to bottom on tiny synthetic data and tells its story: same ranking for everyone, then DIN."""

import base64
import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "tutorials" / "02_from_the_article_to_din.ipynb"


@pytest.mark.slow
def test_article_to_din_notebook_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("MMREC_TUTORIAL_TINY", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    gauc = {name: float(value) for name, value in re.findall(r"^(\w+)\s+\{'gauc': ([0-9.]+)", text, re.MULTILINE)}
    assert set(gauc) == {"article_lstm", "embedding_mlp", "din"}
    assert all(0.0 <= value <= 1.0 for value in gauc.values())
    # the article's model ranks items identically for two different users
    first, second = re.search(r"top 5 for two different users: (\[[^\]]*\]) (\[[^\]]*\])", text).groups()
    assert first == second
    images = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1 and base64.b64decode(images[0]).startswith(b"\x89PNG")
