"""scripts/compare_variants.py: its table holds exactly what the runs' own files say."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    # loaded from their paths (scripts/ is no package); in sys.modules first, for dataclasses
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


compare = _load("compare_variants")
demo = _load("make_demo_dataset")

TINY_TRAIN = (
    "--ngf 8 --ndf 8 --netG resnet_6blocks --load_size 32 --crop_size 32 --num_threads 0 --display_id 0 "
    "--gpu_ids -1 --print_freq 2 --max_iters 5 --eval_freq 0"
)
TINY_TEST = "--gpu_ids -1 --num_threads 0 --load_size 32 --crop_size 32"


def table_rows(markdown: str) -> dict[tuple[str, str], list[str]]:
    """The per-seed table's rows by (variant, seed): their cells after the iteration count."""
    per_seed = markdown.split("Mean over seeds")[0]
    rows = {}
    for line in per_seed.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 3 and cells[1].isdigit():
            rows[(cells[0], cells[1])] = cells[2:]
    return rows


@pytest.mark.slow
def test_table_equals_the_runs_own_metrics_and_logs(tmp_path: Path, inception_weights: Path, capsys) -> None:
    data = tmp_path / "demo"
    demo.make_dataset(data, size=32, n_train=4, n_test=3)
    out = tmp_path / "cmp"
    argv = [
        *("--out", str(out), "--dataroot", str(data)),
        *("--train_args", TINY_TRAIN, "--test_args", TINY_TEST),
        *("--variant", "cyc=--model cycle_gan", "--variant", "fast=--model cut --cut_mode fastcut"),
        *("--seeds", "0", "--metrics", "fid,kid", "--inception_weights", str(inception_weights)),
    ]
    assert compare.main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "compare.json").read_text())
    markdown = (out / "compare.md").read_text()
    assert markdown in printed
    cells = table_rows(markdown)
    assert set(cells) == {("cyc", "0"), ("fast", "0")}

    for row in summary["rows"]:
        run = f"{row['variant']}_s{row['seed']}"
        # the run's own scores, as test.py wrote them: A->B translation against the ground truth
        side_a = json.loads((out / "results" / run / "test_latest" / "metrics.json").read_text())["A"]
        assert side_a["images"] == 3
        for key in ("l1", "psnr", "ssim"):
            assert row[key] == side_a["fake_B"][key]
        assert row["fid"] == side_a["metrics"]["values"]["fid"]
        assert row["kid"] == side_a["metrics"]["values"]["kid"]
        assert row["input_l1"] == side_a["real_A"]["l1"]
        # s/iter: the median of the run's own log records; iterations: its latest checkpoint's
        log = [json.loads(line) for line in (out / "checkpoints" / run / "loss_log.jsonl").read_text().splitlines()]
        times = [r["time_per_iter"] for r in log if r["kind"] == "train"]
        assert len(times) == 2  # iterations 2 and 4 of 5
        assert row["s_per_iter"] == statistics.median(times)
        latest = torch.load(out / "checkpoints" / run / "latest.pth", map_location="cpu", weights_only=True)
        assert row["iters"] == latest["total_iters"] == 5
        assert 50 * 2**20 < row["peak_rss_bytes"] < 16 * 2**30  # a real process's peak: torch alone is > 50 MiB
        # the printed row shows those very numbers
        shown = cells[(row["variant"], str(row["seed"]))]
        assert shown[0] == "5"
        assert float(shown[1]) == pytest.approx(side_a["fake_B"]["l1"], abs=5e-5)
        assert float(shown[2]) == pytest.approx(side_a["fake_B"]["psnr"], abs=5e-3)
        assert float(shown[4]) == pytest.approx(side_a["metrics"]["values"]["fid"], abs=5e-3)
        assert float(shown[6]) == pytest.approx(statistics.median(times), abs=5e-4)
        assert float(shown[7]) == pytest.approx(row["peak_rss_bytes"] / 2**20, abs=0.5)
    # the two variants really differ (CUT and CycleGAN trained differently)
    assert summary["rows"][0]["l1"] != summary["rows"][1]["l1"]

    # --reuse: the recorded runs are kept, neither trained nor tested again (their logs untouched)
    logs = [out / "checkpoints" / "cyc_s0" / "loss_log.jsonl", out / "logs" / "cyc_s0.test.log"]
    before = [path.stat().st_mtime_ns for path in logs]
    assert compare.main([*argv, "--reuse", "--table", "again"]) == 0
    assert [path.stat().st_mtime_ns for path in logs] == before
    assert json.loads((out / "again.json").read_text())["rows"] == summary["rows"]


def test_means_and_half_range_over_seeds() -> None:
    rows = [
        {"variant": "a", "seed": 0, "l1": 0.2, "fid": 10.0},
        {"variant": "a", "seed": 1, "l1": 0.4, "fid": 30.0, "peak_rss_mib": 800.0},
        {"variant": "b", "seed": 0, "l1": 0.5},
        {"variant": "b", "seed": 1, "error": "train.py exited 2: boom"},
    ]
    a, b = compare.mean_over_seeds(rows)
    assert a["seeds"] == [0, 1] and b["seeds"] == [0]  # a failed run does not enter the mean
    assert a["l1"] == pytest.approx(0.3) and a["l1_half_range"] == pytest.approx(0.1)
    assert a["fid"] == pytest.approx(20.0) and a["fid_half_range"] == pytest.approx(10.0)
    assert b["l1"] == 0.5 and "fid" not in b
    table = compare.format_table(rows, [a, b])
    assert "| a | 0,1 | | 0.3000 ±0.1000 |" in table
    # a figure only one of the seeds has: its value, without a spread it does not have
    assert a["peak_rss_mib_n"] == 1 and a["l1_n"] == 2
    assert "| 800 |" in table and "800 ±" not in table
    assert "| b | 1 | - | failed: train.py exited 2: boom |" in table


def test_peak_rss_is_the_childs_own(tmp_path: Path) -> None:
    """Two children that touch 20 and 220 MiB: their peaks differ by about 200 MiB (the parent's
    memory, which a forked child's ru_maxrss starts from, must not hide the difference)."""
    code = "import time, numpy as np; a = np.ones({} * 2**20 // 8); time.sleep(0.6)"
    peaks = [compare.run_process([sys.executable, "-c", code.format(mib)], tmp_path / "log")[2] for mib in (20, 220)]
    assert peaks[0] < 150 * 2**20  # python + numpy + 20 MiB, far below this test process's own RSS
    assert (peaks[1] - peaks[0]) / 2**20 == pytest.approx(200, abs=15)


def test_reuse_keeps_what_matches(tmp_path: Path) -> None:
    args = compare.build_parser().parse_args(
        ["--out", str(tmp_path), "--dataroot", "d", "--train_args", "-x 1", "--reuse"]
    )
    flags = ["--model", "cut"]
    record = tmp_path / "r.json"

    def recorded(**changes) -> tuple[str, object]:
        row = {"flags": flags, "base": compare.base_of(args), "iters": 5, "l1": 0.1, **changes}
        record.write_text(json.dumps(row))
        return compare.reuse_of(record, flags, args)

    assert recorded() == ("row", json.loads(record.read_text()))
    # the test failed, or another test base: only test.py runs again, on the recorded training
    assert recorded(error="test.py exited 2: x")[0] == "training"
    assert recorded(base={**compare.base_of(args), "metrics": "kid"})[0] == "training"
    # another training base, other flags, or no finished training: everything again
    assert recorded(base={**compare.base_of(args), "train_args": "-x 2"})[0] == "nothing"
    assert recorded(flags=["--model", "cycle_gan"])[0] == "nothing"
    assert recorded(iters=None, error="train.py exited 1: y")[0] == "nothing"
    args.reuse = False
    assert recorded() == ("nothing", None)


def test_failed_training_is_a_row_not_a_crash(tmp_path: Path, capsys) -> None:
    data = tmp_path / "demo"
    demo.make_dataset(data, size=32, n_train=2, n_test=2)
    out = tmp_path / "cmp"
    argv = ["--out", str(out), "--dataroot", str(data), "--train_args", TINY_TRAIN, "--metrics", ""]
    status = compare.main([*argv, "--variant", "bad=--netG no_such_net"])
    assert status == 1
    row = json.loads((out / "runs" / "bad_s0.json").read_text())
    # train.py's own one-line error, naming the bad value
    assert row["error"].startswith("train.py exited 2: train.py: error:") and "no_such_net" in row["error"]
    assert "failed: train.py exited 2" in (out / "compare.md").read_text()


@pytest.mark.parametrize(
    "variant, words",
    [("noflags", "expected NAME=FLAGS"), ("a/b=--model cut", "names folders"), ("x=--lr '1", "quotation")],
)
def test_bad_variant_is_one_line_error(tmp_path: Path, capsys, variant: str, words: str) -> None:
    status = compare.main(["--out", str(tmp_path / "o"), "--dataroot", str(tmp_path), "--variant", variant])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("compare_variants.py: error:") and words in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()  # refused before anything was run or written
