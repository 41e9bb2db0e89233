"""`mmrec train MODEL --split rolling:N`: window-by-window update / retrain / never on the user's own folder."""

import json

import numpy as np
import pytest

from mmrec_tf.cli import main
from mmrec_tf.data.sources import make_synthetic


@pytest.fixture(scope="module")
def timed_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shop")
    synthetic = make_synthetic(num_users=30, num_items=24, num_clusters=3, interactions_per_user=12, seed=5)
    log = synthetic.interactions[["user_id", "item_id", "timestamp"]].copy()
    # every user's j-th interaction happens in the same period, so each window holds every user
    step = log.groupby("user_id", sort=False).cumcount()
    log["timestamp"] = step * 1000 + log["user_id"].str.extract(r"(\d+)$")[0].astype(int)
    log.to_csv(folder / "interactions.csv", index=False)
    return folder


def test_rolling_split_reports_every_strategy_per_window(timed_folder, tmp_path, capsys):
    run_dir = tmp_path / "rolling"
    assert main(["train", "two_tower", "--data", str(timed_folder), "--split", "rolling:3", "--epochs", "2",
                 "--run-dir", str(run_dir), "--set", "embedding_dim=4"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((run_dir / "rolling.json").read_text())
    assert summary["split"] == "rolling:3" and sorted(summary["strategies"]) == ["never", "retrain", "update"]
    for name, report in summary["strategies"].items():
        assert len(report["windows"]) == 2, name  # windows 2 and 3 are evaluated
        assert report["mean_hr@10"] == pytest.approx(np.mean([w["hr@10"] for w in report["windows"]]))
        assert f"{name}: mean hr@10 {report['mean_hr@10']:.4f}" in printed
    # window 2 is served by the window-1 model under every strategy: the strategies part only afterwards
    first = {name: report["windows"][0]["hr@10"] for name, report in summary["strategies"].items()}
    assert first["update"] == first["retrain"] == first["never"]
    assert summary["strategies"]["never"]["train_seconds"][1] == 0.0


def test_rolling_split_is_refused_for_ranking_models_and_single_windows(timed_folder, tmp_path, capsys):
    assert main(["train", "din", "--data", str(timed_folder), "--split", "rolling:3",
                 "--run-dir", str(tmp_path / "din")]) == 2
    assert capsys.readouterr().err.strip() == ("mmrec train: error: --split rolling:N evaluates retrieval models; "
                                               "din is a ranking model")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "two_tower", "--split", "rolling:1"])
    assert exit_info.value.code == 2 and "needs N >= 2 windows" in capsys.readouterr().err
