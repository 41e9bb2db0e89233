"""Run a tutorial notebook the way the tutorial tests do: tiny data, a scratch folder, outputs collected.

``execute_tutorial(name, folder)`` runs ``tutorials/<name>`` with
``MMREC_TUTORIAL_TINY=1`` in a fresh ``python3`` kernel whose working folder
is ``folder`` and returns an :class:`ExecutedNotebook`: every output of every
code cell, their text (stream text and ``text/plain`` results) and their PNG
images, decoded.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import pathlib
from unittest import mock

import nbformat
from nbclient import NotebookClient

TUTORIALS = pathlib.Path(__file__).resolve().parents[1] / "tutorials"


@dataclasses.dataclass
class ExecutedNotebook:
    outputs: list[dict]

    @property
    def text(self) -> str:
        """Stream text and ``text/plain`` results of all code cells, in order, one output per line."""
        return "\n".join(output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
                         for output in self.outputs)

    @property
    def png_images(self) -> list[bytes]:
        return [base64.b64decode(output["data"]["image/png"]) for output in self.outputs
                if "image/png" in output.get("data", {})]


def read_tutorial(name: str):
    return nbformat.read(TUTORIALS / name, as_version=4)


def execute_tutorial(name: str, folder: pathlib.Path, timeout: int = 600) -> ExecutedNotebook:
    notebook = read_tutorial(name)
    with mock.patch.dict(os.environ, {"MMREC_TUTORIAL_TINY": "1"}):
        NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(folder)}}).execute()
    return ExecutedNotebook([output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs])
