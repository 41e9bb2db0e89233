"""Atomic version folders: nothing half-written, nothing overwritten, TF Serving ignores temp folders."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from mmrec_tf.export import versioning
from mmrec_tf.export.versioning import (
    clean_stale_temp_dirs,
    list_versions,
    next_version,
    write_version_atomically,
)

ALL_DIGITS = re.compile(r"[0-9]+")


def _write_fake_saved_model(path: Path) -> None:
    (path / "saved_model.pb").write_bytes(b"graph")
    (path / "variables").mkdir()
    (path / "variables" / "variables.index").write_bytes(b"index")


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_next_version_counts_only_all_digit_folders(tmp_path):
    assert next_version(tmp_path / "missing") == 1
    assert next_version(tmp_path) == 1
    for name in ("1", "3", "0010", ".tmp-99-1-ab", "v5", "5a", "assets"):
        (tmp_path / name).mkdir()
    (tmp_path / "20").write_text("a file, not a version folder")
    assert next_version(tmp_path) == 11
    assert list(list_versions(tmp_path)) == [1, 3, 10]
    assert list_versions(tmp_path)[10] == tmp_path / "0010"


def test_write_publishes_complete_folder_under_next_version(tmp_path):
    base = tmp_path / "din"
    seen = {}

    def write_fn(tmp: Path) -> None:
        seen["tmp"] = tmp
        seen["final_existed_during_write"] = (base / "1").exists()
        _write_fake_saved_model(tmp)

    final = write_version_atomically(base, write_fn)

    assert final == base / "1"
    assert not seen["final_existed_during_write"]
    assert seen["tmp"].parent == base
    assert not ALL_DIGITS.fullmatch(seen["tmp"].name)
    assert (final / "saved_model.pb").read_bytes() == b"graph"
    assert (final / "variables" / "variables.index").read_bytes() == b"index"
    assert sorted(p.name for p in base.iterdir()) == ["1"]
    assert write_version_atomically(base, _write_fake_saved_model) == base / "2"
    assert write_version_atomically(base, _write_fake_saved_model, version=7) == base / "7"
    assert next_version(base) == 8


def test_existing_version_is_never_overwritten(tmp_path):
    (tmp_path / "0002").mkdir()
    (tmp_path / "0002" / "marker").write_text("old")
    calls = []

    with pytest.raises(FileExistsError, match="0002"):
        write_version_atomically(tmp_path, calls.append, version=2)

    assert calls == []
    assert (tmp_path / "0002" / "marker").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0002"]


def test_version_created_concurrently_during_write_is_not_overwritten(tmp_path):
    def write_fn(tmp: Path) -> None:
        _write_fake_saved_model(tmp)
        (tmp_path / "5").mkdir()  # another exporter publishes version 5 meanwhile
        (tmp_path / "5" / "marker").write_text("theirs")

    with pytest.raises(FileExistsError, match="5"):
        write_version_atomically(tmp_path, write_fn, version=5)

    assert (tmp_path / "5" / "marker").read_text() == "theirs"
    assert not (tmp_path / "5" / "saved_model.pb").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["5"]


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failing_write_leaves_nothing(tmp_path, error):
    def write_fn(tmp: Path) -> None:
        _write_fake_saved_model(tmp)
        raise error

    with pytest.raises(type(error)):
        write_version_atomically(tmp_path, write_fn)

    assert list(tmp_path.iterdir()) == []
    assert next_version(tmp_path) == 1


@pytest.mark.parametrize("version", [-1, True, "3", 2.0])
def test_invalid_version_is_rejected(tmp_path, version):
    with pytest.raises(ValueError, match="non-negative int"):
        write_version_atomically(tmp_path, _write_fake_saved_model, version=version)
    assert list(tmp_path.iterdir()) == []


def test_sigkill_during_write_leaves_no_version_folder(tmp_path):
    # Load versioning.py by path so the child does not import the whole package.
    code = textwrap.dedent(
        f"""
        import importlib.util, sys, time
        from pathlib import Path
        spec = importlib.util.spec_from_file_location("versioning", {versioning.__file__!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

        def write_fn(tmp):
            (tmp / "saved_model.pb").write_bytes(b"half of a graph")
            print(tmp, flush=True)
            time.sleep(120)
            (tmp / "variables").mkdir()

        module.write_version_atomically(Path({str(tmp_path)!r}), write_fn, version=1)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        temp_dir = Path(process.stdout.readline().strip())
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()

    assert process.returncode == -signal.SIGKILL
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == [temp_dir.name]
    assert f"-{process.pid}-" in temp_dir.name
    assert not any(ALL_DIGITS.fullmatch(name) for name in leftovers)
    assert list_versions(tmp_path) == {}
    assert next_version(tmp_path) == 1

    assert clean_stale_temp_dirs(tmp_path) == [temp_dir]
    assert list(tmp_path.iterdir()) == []


def test_clean_stale_temp_dirs_keeps_live_writers_and_other_folders(tmp_path):
    dead = tmp_path / f".tmp-3-{_dead_pid()}-0a1b"
    live = tmp_path / f".tmp-4-{os.getpid()}-0a1c"
    others = [tmp_path / name for name in ("1", ".tmp-foo", ".tmp-3-x-0a1b", "notes")]
    for folder in [dead, live, *others]:
        folder.mkdir()
    (dead / "saved_model.pb").write_bytes(b"partial")

    assert clean_stale_temp_dirs(tmp_path) == [dead]

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name] + [folder.name for folder in others]
    )
    assert clean_stale_temp_dirs(tmp_path / "missing") == []


def test_concurrent_writers_of_one_model_each_get_their_own_version(tmp_path):
    """Both writers pick version 1 before either publishes; the second takes version 2 instead of failing."""
    both_writing = threading.Barrier(2, timeout=30)
    published, errors = [], []

    def export(marker: str) -> None:
        def write_fn(tmp: Path) -> None:
            _write_fake_saved_model(tmp)
            (tmp / "marker").write_text(marker)
            both_writing.wait()

        try:
            published.append(write_version_atomically(tmp_path, write_fn))
        except Exception as error:  # collected, so a failure shows in the assertion below
            errors.append(error)

    writers = [threading.Thread(target=export, args=(marker,)) for marker in ("a", "b")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()

    assert errors == []
    assert sorted(path.name for path in published) == ["1", "2"]
    assert sorted((path / "marker").read_text() for path in published) == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2"]


def test_a_write_removes_temp_folders_of_killed_writers_only(tmp_path):
    dead = tmp_path / f".tmp-1-{_dead_pid()}-0a1b"
    live = tmp_path / f".tmp-1-{os.getpid()}-0a1c"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "saved_model.pb").write_bytes(b"partial")

    assert write_version_atomically(tmp_path, _write_fake_saved_model).name == "1"

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["1", live.name])


def test_a_version_taken_by_another_writer_at_publish_time_moves_to_the_next_number(tmp_path, monkeypatch):
    """The check-then-rename window: the folder appears between the existence check and os.rename."""
    rename = os.rename

    def rename_after_a_rival(source, target):
        if Path(target).name == "1" and not (tmp_path / "1").exists():
            (tmp_path / "1").mkdir()
            (tmp_path / "1" / "marker").write_text("theirs")
        rename(source, target)

    monkeypatch.setattr(versioning.os, "rename", rename_after_a_rival)
    assert write_version_atomically(tmp_path, _write_fake_saved_model).name == "2"
    assert (tmp_path / "1" / "marker").read_text() == "theirs"
    assert (tmp_path / "2" / "saved_model.pb").read_bytes() == b"graph"
