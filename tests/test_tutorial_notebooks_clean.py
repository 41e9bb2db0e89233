"""Every tutorial is committed without outputs, so what a reader sees is what running it produces."""

import pytest
from notebooks import TUTORIALS, read_tutorial


@pytest.mark.parametrize("name", sorted(path.name for path in TUTORIALS.glob("*.ipynb")))
def test_the_committed_notebook_has_no_outputs(name):
    code = [cell for cell in read_tutorial(name).cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
