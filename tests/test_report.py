"""`mmrec report`: its JSON equals the evaluation functions, its HTML has every section and decodable PNG plots,
and headless Chromium renders every plot without errors; `mmrec export --rerank` and `mmrec query --explain`."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib import image

from mmrec_tf.cli import main
from mmrec_tf.data.sources import load_dataset, make_synthetic
from mmrec_tf.evaluation import fairness
from mmrec_tf.evaluation import beyond_accuracy as ba
from mmrec_tf.evaluation.full_ranking import evaluate_retrieval
from mmrec_tf.evaluation.recommendation_lists import (beyond_accuracy_metrics, item_popularity, ranked_items,
                                                      recommend, rerank_lists)
from mmrec_tf.experiment import load_run, load_run_data, prepare_data, run, save_run
from mmrec_tf.export.explanations import history_similarity
from mmrec_tf.export.reranking import make_reranker
from mmrec_tf.report import write_report
from mmrec_tf.report.numbers import ACCURACY_KS, LIST_K, item_genres
from mmrec_tf.report.page import SECTIONS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A CSV folder with users.csv (column `segment`), and a briefly trained two-tower run on it."""
    folder = tmp_path_factory.mktemp("shop")
    synthetic = make_synthetic(num_users=48, num_items=30, num_clusters=3, interactions_per_user=10, seed=3)
    synthetic.interactions[["user_id", "item_id", "timestamp"]].to_csv(folder / "interactions.csv", index=False)
    synthetic.items.assign(genres=["|".join(g) for g in synthetic.items["genres"]]).to_csv(folder / "items.csv")
    synthetic.users.to_csv(folder / "users.csv")
    data = prepare_data(load_dataset("folder", str(folder)), max_history=6)
    result = run("two_tower", data, training={"epochs": 3, "learning_rate": 0.05, "jit_compile": False}, verbose=0,
                 embedding_dim=8)
    run_dir = tmp_path_factory.mktemp("runs") / "shop_two_tower"
    save_run(result, run_dir, {"dataset": "folder", "path": str(folder)})
    return run_dir


@pytest.fixture(scope="module")
def report(shop, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    html_path, json_path = write_report(shop, out=out, min_users=5, num_resamples=200)
    return html_path, json.loads(json_path.read_text(encoding="utf-8"))


def test_json_numbers_equal_the_evaluation_functions(shop, report):
    _, numbers = report
    (numbers,) = numbers["runs"]
    model, space, record = load_run(shop)
    data = load_run_data(record, space)
    test, seen = data.examples["test"], data.seen("test")
    assert numbers["accuracy"]["metrics"] == evaluate_retrieval(model, test, seen, ks=ACCURACY_KS).metrics
    lists = recommend(model, test, seen, k=LIST_K)
    popularity, user_counts = item_popularity(data.examples["train"], space.num_items)
    embeddings = np.concatenate([np.zeros((1, 8), np.float32), np.asarray(model.all_item_embeddings())])
    expected = beyond_accuracy_metrics(lists.lists, test.history, space.num_items, popularity, user_counts,
                                       space.num_users, genres=item_genres(space), embeddings=embeddings)
    assert numbers["beyond_accuracy"] == {"hr@10": float(lists.hits(LIST_K).mean()), **expected}
    assert set(expected) == {"coverage", "gini", "entropy", "average_popularity", "long_tail_share", "novelty",
                             "ild_genres", "calibration_kl", "ild_embeddings"}
    # users u0..u47 are test examples in user order; their segment is the users.csv column
    segments = fairness.user_groups(data.dataset.users, [space.user_vocab.id_of(u) for u in test.user_id], "segment")
    groups = fairness.user_group_report(lists.hits(LIST_K), segments, metric="hr@10", column="segment",
                                        num_resamples=200, min_users=5)
    assert numbers["user_groups"] == {"segment": groups.to_dict()}
    x, y = ba.lorenz_curve(ba.exposure_counts(lists.lists, space.num_items))
    assert numbers["exposure"]["lorenz"] == {"items": x.tolist(), "exposure": y.tolist()}
    deciles = fairness.item_group_exposure(lists.lists, fairness.popularity_deciles(popularity), popularity,
                                           hits=lists.lists == test.item_id[:, None])
    assert numbers["exposure"]["deciles"]["9"] == deciles.loc[9].to_dict()
    # re-ranking: strength 0 is the plain top 10; MMR at 0.5 equals the export re-ranker over the same shortlist
    curves = numbers["reranking"]
    assert sorted(curves) == ["calibrated", "mmr", "tail"]
    for points in curves.values():
        assert points[0]["strength"] == 0.0 and points[0]["hr@10"] == numbers["beyond_accuracy"]["hr@10"]
        assert points[0]["long_tail_share"] == expected["long_tail_share"]
    shortlist, scores = ranked_items(model, test, seen, k=space.num_items)
    reranker = make_reranker("mmr:0.5", LIST_K, np.arange(1, space.num_items + 1), embeddings=embeddings[1:])
    reranked = rerank_lists(reranker, shortlist, scores, test.history)
    (point,) = [p for p in curves["mmr"] if p["strength"] == 0.5]
    assert point["hr@10"] == float((reranked == test.item_id[:, None]).any(axis=1).mean())
    assert point["ild_embeddings"] == ba.intra_list_diversity(reranked, embeddings)


def test_explained_examples_are_the_explain_weights(shop, report):
    _, numbers = report
    examples = numbers["runs"][0]["explanations"]
    assert len(examples) == 3
    model, space, record = load_run(shop)
    test = load_run_data(record, space).examples["test"]
    first = examples[0]
    row = int(np.flatnonzero(test.user_id == space.user_vocab.lookup([first["user_id"]])[0])[0])
    candidates = space.item_vocab.lookup([item["item_id"] for item in first["recommendations"]])
    weights = history_similarity(model, test.history[row:row + 1], np.asarray([candidates])).numpy()[0]
    top = first["recommendations"][0]
    best = int(np.argmax(weights[0]))
    assert top["because"][0]["item_id"] == space.item_vocab.id_of(int(test.history[row, best]))
    assert top["because"][0]["weight"] == pytest.approx(float(weights[0, best]), abs=1e-6)


def test_html_has_every_section_and_png_plots(report):
    html_path, numbers = report
    page = html_path.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)">', page)
    # accuracy, one user-group column, exposure, one re-ranking figure
    assert [alt for alt, _ in images] == ["HR@K and NDCG@K against K", "HR@10 by segment",
                                          "Lorenz curve of exposure and exposure by popularity decile",
                                          "re-ranking trade-off of shop_two_tower"]
    for _, encoded in images:
        png = base64.b64decode(encoded, validate=True)
        assert png[:8] == PNG_SIGNATURE
        pixels = image.imread(io.BytesIO(png), format="png")
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.std() > 0  # decodes, and is not blank
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert f"{numbers['runs'][0]['beyond_accuracy']['gini']:.4f}" in page
    assert oct(html_path.stat().st_mode & 0o777) == "0o644"


def test_cli_report_compare_and_refusals(shop, tmp_path, capsys):
    out = tmp_path / "two"
    assert main(["report", str(shop), "--compare", str(shop), "--out", str(out)]) == 0
    assert "report.html" in capsys.readouterr().out
    compared = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in compared["runs"]] == ["shop_two_tower", "shop_two_tower"]
    assert compared["runs"][0]["beyond_accuracy"] == compared["runs"][1]["beyond_accuracy"]
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    error = capsys.readouterr().err
    assert error == f"mmrec report: error: {tmp_path / 'empty'}: not a run folder (no run.json); create one with " \
                    "`mmrec train`\n"
    (tmp_path / "empty" / "run.json").write_text("{not json")
    assert main(["report", str(shop), "--compare", str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.startswith(f"mmrec report: error: {tmp_path / 'empty' / 'run.json'}: not valid JSON")


def test_export_rerank_and_query_explain(shop, tmp_path, capsys):
    saved = tmp_path / "saved_models"
    assert main(["export", str(shop), "--saved-models", str(saved), "--k", "5", "--rerank", "tail:0.5"]) == 0
    capsys.readouterr()
    model, space, _ = load_run(shop)
    history = [space.item_vocab.id_of(i) for i in (1, 2, 3)]
    assert main(["query", str(saved / "two_tower"), "--user", "u0", "--history", *history, "--top", "3",
                 "--explain", "--run", str(shop)]) == 0
    lines = capsys.readouterr().out.splitlines()
    ranked = [re.search(r"\[(\S+)\]", line).group(1) for line in lines if re.match(r"\s+\d+\. ", line)]
    reasons = [line.split("because: ")[1] for line in lines if "because: " in line]
    assert len(ranked) == 3 and len(reasons) == 3
    weights = history_similarity(model, np.asarray([[1, 2, 3]]),
                                 np.asarray([space.item_vocab.lookup(ranked)])).numpy()[0]
    titles = dict(zip(space.item_vocab.ids, space.item_titles))
    for reason, row in zip(reasons, weights):
        order = np.argsort(-row, kind="stable")
        assert reason == ", ".join(f"{titles[history[p]]} ({row[p]:.2f})" for p in order)
    with pytest.raises(SystemExit) as refused:
        main(["export", str(shop), "--saved-models", str(saved), "--rerank", "tail:2"])
    assert refused.value.code == 2
    assert "--rerank: rerank 'tail:2': expected" in capsys.readouterr().err


def _chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


RENDER_CHECK = """<script>
window.problems = [];
window.addEventListener("error", e => window.problems.push(String(e.message || (e.target && e.target.src) || e)), true);
const original = console.error;
console.error = (...args) => { window.problems.push(args.join(" ")); original(...args); };
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const shown = images.filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0);
  const check = document.createElement("pre");
  check.id = "render-check";
  check.textContent = JSON.stringify({images: images.length, shown: shown.length, problems: window.problems});
  document.body.appendChild(check);
});
</script>"""


def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (apt-get install -y chromium; .ci/run installs it)")
    html_path, _ = report
    page = html_path.read_text(encoding="utf-8")
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("<head>", "<head>" + RENDER_CHECK, 1), encoding="utf-8")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", checked.as_uri()], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    found = re.search(r'<pre id="render-check">(.*?)</pre>', dom)
    assert found, "the render check did not run"
    assert json.loads(found.group(1).replace("&quot;", '"')) == {"images": 4, "shown": 4, "problems": []}
    screenshot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={screenshot}", "--window-size=1100,2600", html_path.as_uri()],
                   capture_output=True, timeout=60, check=True)
    pixels = image.imread(screenshot)
    assert pixels.shape[:2] == (2600, 1100)
    # the first plot (accuracy curves) lies in the top 700 rows; it has drawn (non-white) pixels
    assert (pixels[150:700, :, :3] < 0.5).any(axis=2).sum() > 2000
