"""The package works installed (not editable): every subpackage and the zoo entries ship inside it."""

import configparser
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]


def test_setup_cfg_lists_every_subpackage():
    config = configparser.ConfigParser()
    config.read(REPOSITORY / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    on_disk = {".".join(p.parent.relative_to(REPOSITORY).parts) for p in (REPOSITORY / "mmrec_tf").rglob("__init__.py")
               if "zoo" not in p.parts}
    assert on_disk <= listed, f"add to setup.cfg [options] packages: {sorted(on_disk - listed)}"
    assert "mmrec_tf.zoo" in listed


@pytest.mark.slow
def test_zoo_entries_load_from_a_non_editable_install(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPOSITORY / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPOSITORY / "mmrec_tf", source / "mmrec_tf", symlinks=True, ignore=ignore)
    shutil.copytree(REPOSITORY / "zoo", source / "zoo", ignore=ignore)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    code = textwrap.dedent("""
        import json, mmrec_tf
        entries = mmrec_tf.list_models(zoo=True)
        entry = mmrec_tf.get_zoo_entry("lstm_two_tower.movielens_100k")
        print(json.dumps({"file": mmrec_tf.__file__, "entries": entries, "source": entry.source}))
    """)
    env = {**os.environ, "PYTHONPATH": str(target)}
    reply = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert reply.returncode == 0, reply.stderr[-2000:]
    found = json.loads(reply.stdout.strip().splitlines()[-1])
    assert found["file"].startswith(str(target))
    assert found["source"].startswith(str(target))
    expected = {p.stem for p in (REPOSITORY / "zoo").glob("*.yaml")}
    assert set(found["entries"]) == expected
