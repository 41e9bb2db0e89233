"""Tutorial 02 runs top to bottom on tiny synthetic data and tells its story: same ranking for everyone, then DIN."""

import re

import pytest
from notebooks import execute_tutorial


@pytest.mark.slow
def test_article_to_din_notebook_runs(tmp_path):
    executed = execute_tutorial("02_from_the_article_to_din.ipynb", tmp_path)
    text = executed.text
    gauc = {name: float(value) for name, value in re.findall(r"^(\w+)\s+\{'gauc': ([0-9.]+)", text, re.MULTILINE)}
    assert set(gauc) == {"article_lstm", "embedding_mlp", "din"}
    assert all(0.0 <= value <= 1.0 for value in gauc.values())
    # the article's model ranks items identically for two different users
    first, second = re.search(r"top 5 for two different users: (\[[^\]]*\]) (\[[^\]]*\])", text).groups()
    assert first == second
    assert len(executed.png_images) == 1 and executed.png_images[0].startswith(b"\x89PNG")
