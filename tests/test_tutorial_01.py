"""The quickstart tutorial runs top to bottom (on tiny synthetic data) and tells the right story."""

import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "tutorials" / "01_quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("MMREC_TUTORIAL_TINY", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    hr = {name: float(value) for name, value in re.findall(r"^(\w+)\s+HR@10=([0-9.]+)", text, re.MULTILINE)}
    assert set(hr) == {"popularity", "two_tower", "lstm_two_tower"}
    assert hr["lstm_two_tower"] > hr["popularity"] and hr["two_tower"] > hr["popularity"]
    assert "'retrieve'" in text and '"signature_name": "retrieve"' in text
