"""Kill training at random moments, resume it, and check the final weights equal an uninterrupted run's.

Each trial starts a fresh run of a tiny ``two_tower`` on synthetic data with
checkpoints (``train_model(..., checkpoint_dir=...)``) in a child process and
SIGKILLs it at a random moment, then resumes it in a new process until it
finishes, and compares every weight array (``np.array_equal``) with a run that
was never interrupted. Half the trials kill from outside after a random delay
(usually mid-epoch); the other half kill the child from inside a checkpoint
write, at a random epoch and a random stage of :func:`mmrec_tf.checkpoints.write_checkpoint`:
the weights file cut at a random fraction of its bytes, before the metadata,
before the rename, after the rename, or while old checkpoints are removed.

    python benchmarks/kill_resume_loop.py --trials 20 --seed 0

Prints one row per kill (the moment, the checkpoints left, the epoch the
resume started from, whether the weights are identical) and a summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import REPOSITORY, print_table  # noqa: E402

EPOCHS = 6
STAGES = ("weights_cut", "before_metadata", "before_rename", "after_rename", "during_cleanup")

CHILD = textwrap.dedent("""
    import json, os, signal, sys
    import keras, numpy as np
    import mmrec_tf.checkpoints as checkpoints
    import mmrec_tf.training as training
    from mmrec_tf.data import FeatureSpace, Preprocessor, leave_last_out, load_dataset
    from mmrec_tf.registry import create_model

    folder, out, kill = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

    def mark(text):
        print(text, flush=True)

    def die():
        mark("killed")
        os.kill(os.getpid(), signal.SIGKILL)

    writing = {"epoch": None}
    if kill:
        write_checkpoint, save_weights = training.write_checkpoint, keras.Model.save_weights
        fsync_file, fsync_folder, rmtree = checkpoints._fsync_file, checkpoints._fsync_folder, checkpoints.shutil.rmtree

        def tracked_write(target, model, epoch):
            writing["epoch"] = epoch
            mark(f"write_begin {epoch}")
            result = write_checkpoint(target, model, epoch)
            mark(f"write_end {epoch}")
            writing["epoch"] = None
            return result

        def at(stage):
            return writing["epoch"] == kill["epoch"] and kill["stage"] == stage

        def cut_weights(model, filepath, *args, **kwargs):
            save_weights(model, filepath, *args, **kwargs)
            if at("weights_cut"):
                os.truncate(filepath, int(os.path.getsize(filepath) * kill["fraction"]))
                die()

        def fsync_file_then(path):
            fsync_file(path)
            if path.name == checkpoints.WEIGHTS_FILE and at("before_metadata"):
                die()

        def fsync_folder_then(path):
            if path.name.startswith(checkpoints.PARTIAL_PREFIX) and at("before_rename"):
                fsync_folder(path)
                die()
            fsync_folder(path)
            if not path.name.startswith(checkpoints.PARTIAL_PREFIX) and at("after_rename"):
                die()

        def rmtree_then(path, *args, **kwargs):
            if at("during_cleanup") and os.path.basename(path).startswith(checkpoints.PREFIX):
                die()
            rmtree(path, *args, **kwargs)

        training.write_checkpoint, keras.Model.save_weights = tracked_write, cut_weights
        checkpoints._fsync_file, checkpoints._fsync_folder = fsync_file_then, fsync_folder_then
        checkpoints.shutil.rmtree = rmtree_then

    class Marks(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            mark(f"epoch_begin {epoch + 1}")

        def on_train_end(self, logs=None):
            mark("train_end")

    if folder:
        found = checkpoints.find_checkpoint(folder)
        mark(f"resume_from {found.epoch if found else 0}")
    dataset = load_dataset("synthetic", num_users=400, num_items=100, num_clusters=4)
    space = FeatureSpace.build(dataset)
    examples = Preprocessor(space, max_history=5).examples(leave_last_out(dataset))
    keras.utils.set_random_seed(0)
    model = create_model("two_tower", space=space, embedding_dim=8)
    config = training.TrainingConfig(epochs=%(epochs)d, batch_size=32, learning_rate=0.05, seed=1)
    training.train_model(model, examples["train"], config, verbose=0, checkpoint_dir=folder or None,
                         callbacks=[Marks()])
    np.savez(out, *model.get_weights())
    mark("done")
""") % {"epochs": EPOCHS}


def _child(folder, out, kill=None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(folder or ""), str(out), json.dumps(kill or {})],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _lines_until(process: subprocess.Popen, wanted: str) -> list[str]:
    """Read the child's progress marks up to and including ``wanted`` (all of them if it never comes)."""
    lines = []
    for line in process.stdout:
        lines.append(line.strip())
        if line.strip() == wanted:
            break
    return lines


def _seconds_between(process: subprocess.Popen, first: str, last: str) -> float:
    _lines_until(process, first)
    started = time.perf_counter()
    _lines_until(process, last)
    return time.perf_counter() - started


def _weights(path) -> list[np.ndarray]:
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def _finish(process: subprocess.Popen) -> tuple[str, str]:
    """The rest of the child's output, then its exit (read directly: lines already read stay read)."""
    stdout, stderr = process.stdout.read(), process.stderr.read()  # its standard error is a few lines at most
    process.wait(timeout=600)
    return stdout, stderr


def _moment(marks: list[str]) -> str:
    """Where the child was when it died, from its last progress marks."""
    epoch_begun = [m for m in marks if m.startswith("epoch_begin")]
    writes = [m for m in marks if m.startswith("write_begin")]
    ends = [m for m in marks if m.startswith("write_end")]
    if len(writes) > len(ends):
        return f"inside the checkpoint write of epoch {writes[-1].split()[1]}"
    if "train_end" in marks:
        return "after training, before the process ended"
    if epoch_begun:
        return f"training epoch {epoch_begun[-1].split()[1]}"
    return "start-up (before the first epoch)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    chooser = random.Random(args.seed)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="mmrec-kill-loop-"))
    try:
        reference = _child(None, scratch / "reference.npz")
        training_seconds = _seconds_between(reference, "epoch_begin 1", "train_end")
        stdout, stderr = _finish(reference)
        if reference.returncode != 0:
            print(stderr[-3000:], file=sys.stderr)
            return 1
        expected = _weights(scratch / "reference.npz")
        print(f"uninterrupted run: {EPOCHS} epochs trained in {training_seconds:.1f} s", flush=True)
        rows, identical = [], 0
        for trial in range(1, args.trials + 1):
            folder, out = scratch / f"trial-{trial}", scratch / f"trial-{trial}.npz"
            early = []
            if trial % 2:
                delay = chooser.uniform(0.0, 1.0) * training_seconds
                process = _child(folder, out)
                early = _lines_until(process, "epoch_begin 1")
                time.sleep(delay)
                process.send_signal(signal.SIGKILL)
                how = f"SIGKILL {delay:.2f} s into training"
            else:
                stage = chooser.choice(STAGES)
                first = 3 if stage == "during_cleanup" else 1  # old checkpoints are removed from the third on
                kill = {"epoch": chooser.randint(first, EPOCHS), "stage": stage,
                        "fraction": round(chooser.uniform(0.0, 1.0), 3)}
                process = _child(folder, out, kill)
                detail = f" at {kill['fraction']:.0%} of its bytes" if kill["stage"] == "weights_cut" else ""
                how = f"self-kill: {kill['stage']}{detail}"
            stdout, _ = _finish(process)
            marks = early + [line for line in stdout.splitlines() if line]
            if process.returncode == 0:
                moment, left = "finished before the kill", "-"
            else:
                moment = _moment(marks)
                left = ",".join(p.name for p in sorted(folder.glob("*"))) if folder.exists() else "(none)"
            resumed = _child(folder, out)
            resumed_stdout, resumed_stderr = _finish(resumed)
            resumed_from = next((line.split()[1] for line in resumed_stdout.splitlines()
                                 if line.startswith("resume_from")), "?")
            if resumed.returncode != 0:
                equal = f"resume FAILED: {resumed_stderr.strip().splitlines()[-1][:80]}"
            else:
                got = _weights(out)
                same = len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected))
                identical += same
                equal = "yes" if same else "NO"
            rows.append([str(trial), how, moment, left, resumed_from, equal])
            print(f"trial {trial}: {how}; {moment}; left {left}; resumed from epoch {resumed_from}; "
                  f"identical: {equal}", flush=True)
        print()
        print_table(["trial", "kill", "moment", "checkpoint folder after the kill", "resumed from epoch",
                     "weights identical"], rows)
        print(f"\n{identical}/{args.trials} killed runs resumed to weights identical to the uninterrupted run "
              f"(every array, np.array_equal)")
        return 0 if identical == args.trials else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
