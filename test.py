"""Translate a held-out set with a trained model; optionally score it, for one checkpoint or all.

    python test.py --dataroot ./datasets/horse2zebra --name h2z                 # testA and testB
    python test.py --dataroot ./datasets/horse2zebra --name h2z --epoch 50      # another checkpoint
    python test.py --dataroot ./datasets/horse2zebra --name h2z --epoch all --metrics fid,kid
    python test.py --dataroot ./imgs --name horse2zebra_pretrained --model test --no_dropout
    python test.py --dataroot ./datasets/facades --name facades --model pix2pix --direction BtoA

Every image is translated (``--num_test`` limits it). Results go to
``results/<name>/<phase>_<epoch>/images/<stem>_<label>.png`` with an ``index.html``. The
trained run's architecture is read from ``checkpoints/<name>/opt.yaml``, so the flags used
for training need not be repeated. When the dataset has ground truth (``<phase>A_gt/``: the
true B image of each ``<phase>A`` image, as the demo dataset has; or paired data, whose test items
carry their own, such as the B halves of ``--dataset_mode aligned``, saved as ``<stem>_real_B.png``),
L1, PSNR and SSIM of the translations are reported and written to ``metrics.json``; ``--metrics`` adds FID/KID against
the real images of the target domain, per direction, or for a style model content_loss/style_loss
against each output's content and style images (on VGG-19: ``--vgg_weights``, by default the
training run's).

A style model (``--model adain``) stylises every content image with every style image instead
(``<content>__<style>_stylized.png``; ``--style_image``, ``--style_weights``, ``--alpha``: see
``data/content_style_dataset.py`` and ``models/adain_model.py``).

``--epoch all`` does this for every epoch checkpoint (and ``latest`` when it differs from the
last), then writes the run's summary to ``results/<name>/``: ``metrics.jsonl``, ``metrics.csv``,
``metrics_<metric>.png`` and ``metrics.html``, and prints the best checkpoint of each metric next
to the last one (see ``engine/report.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from data.base_dataset import preprocess_from_options
from engine.evaluation import (
    MetricScorer,
    checkpoints_to_test,
    direction_scores,
    ground_truth_scores,
    translate_and_score,
)
from engine.report import CheckpointScores, format_best_vs_last, write_run_report
from models import BaseModel, create_model
from monitor.trackers import check_tracker_packages
from options import Options, format_options, gpu_ids, parse_options
from util.device import seed_everything, select_device
from util.errors import UserError, one_line

if TYPE_CHECKING:
    from monitor.wandb_backend import WandbBackend


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if any(arg.split("=")[0] in ("--use_tensorboard", "--tensorboard_dir") for arg in argv):
            raise UserError(
                "--use_tensorboard is train.py's: test.py writes its results and scores to results/<name>/ "
                "(index.html, metrics.json; --epoch all: metrics.html), and --use_wandb logs them to W&B"
            )
        opt = parse_options(argv, is_train=False, prog="test.py")
        check_tracker_packages(opt)
        return run(opt)
    except UserError as e:
        print(f"test.py: error: {one_line(e)}", file=sys.stderr)
        return 2


def run(opt: Options) -> int:
    print(format_options(opt))
    if opt.dry_run:
        print("dry run: nothing translated")
        return 0
    device = select_device(gpu_ids(opt.gpu_ids), preprocess_from_options(opt, train=False).fixed_size)
    seed_everything(opt.seed)
    model = create_model(opt, device)
    # Like the reference, test in train mode unless --eval (it matters for batch norm and dropout).
    model.eval() if opt.eval else model.train()
    if (slow := model.fast.warning()) is not None:
        print(f"test.py: warning: {slow}", file=sys.stderr)
    scorer = MetricScorer.from_options(opt, device)  # one Inception network for every checkpoint
    if scorer is not None:
        scorer.check_folders(opt, model)
    run_dir = Path(opt.checkpoints_dir) / opt.name
    results_dir = Path(opt.results_dir) / opt.name

    tracker = wandb_tracker(opt, results_dir) if opt.use_wandb else None
    try:
        scores, report = translate_checkpoints(opt, model, scorer, run_dir, results_dir, tracker)
    finally:
        if tracker is not None:
            tracker.close()

    if opt.epoch == "all":
        if scorer is None:
            print(f"translated {len(scores)} checkpoints; add --metrics (e.g. fid,kid) to compare them")
            return 0
        title = f"{opt.name}: {opt.phase} metrics of {len(scores)} checkpoints"
        protocol = scorer.protocol(opt, report)  # every checkpoint saw the same image sets: take the last's
        files = write_run_report(scores, scorer.metrics, results_dir, protocol, title)
        print(format_best_vs_last(scores, scorer.metrics))
        print(f"summary: {files['html']} (also {files['jsonl'].name}, {files['csv'].name}, metrics_<metric>.png)")
    return 0


def translate_checkpoints(
    opt: Options,
    model: BaseModel,
    scorer: MetricScorer | None,
    run_dir: Path,
    results_dir: Path,
    tracker: WandbBackend | None,
) -> tuple[list[CheckpointScores], dict[str, dict]]:
    """Translate (and score) with each checkpoint ``--epoch`` names; with ``--use_wandb`` log each
    one's result images (a step per input) and then its scores (a step). Returns the scores and the
    last report."""
    scores: list[CheckpointScores] = []
    report: dict[str, dict] = {}
    for item in checkpoints_to_test(run_dir, opt.epoch, [model.checkpoint_key(n) for n in model.nets]):
        nets, averaged = item.checkpoint.weights(not opt.no_ema)  # --ema_decay's averages, unless --no_ema
        model.load_networks(nets, item.checkpoint.source)
        print(item.checkpoint.describe(averaged))
        seed_everything(opt.seed)  # each checkpoint translates with the same randomness (dropout)
        out_dir = results_dir / f"{opt.phase}_{item.tag}"
        rows: dict[str, list[tuple[str, dict[str, Path]]]] = {}
        title = f"{opt.name}: {opt.phase}, epoch {item.tag}"
        report = translate_and_score(model, opt, out_dir, scorer, title, results=rows if tracker else None)
        print_report(report)
        print(f"results: {out_dir / 'index.html'}")
        scored = CheckpointScores(item.tag, item.epoch, item.checkpoint.total_iters, direction_scores(report))
        scores.append(scored)
        if tracker is not None:
            for side_rows in rows.values():
                tracker.log_results(side_rows)
            tracker.log_values(tracked_scores(scored, report))
    return scores, report


def wandb_tracker(opt: Options, results_dir: Path) -> WandbBackend:
    """The reference's ``test.py --use_wandb``: a W&B run of its own (job type ``test``, named after
    the trained run) with the resolved options as config; its files go to ``results/<name>/wandb``."""
    from monitor.wandb_backend import WandbBackend  # optional package: imported only when asked for

    return WandbBackend(results_dir, opt.wandb_project_name, opt.name, opt.to_dict(), job_type="test")


def tracked_scores(scored: CheckpointScores, report: dict[str, dict]) -> dict[str, object]:
    """One checkpoint's values for the tracker: which checkpoint, ``metrics/<key>_<direction>`` (as
    train.py --eval_freq names them) and ``truth/<label>_<l1|psnr|ssim>`` against ground truth."""
    values: dict[str, object] = {"checkpoint": scored.tag}
    if scored.epoch is not None:
        values["epoch"] = scored.epoch
    if scored.total_iters is not None:
        values["total_iters"] = scored.total_iters
    for direction, metrics in scored.scores.items():
        values.update({f"metrics/{key}_{direction}": value for key, value in metrics.items()})
    for result in report.values():
        for label, truth in ground_truth_scores(result).items():
            values.update({f"truth/{label}_{key}": value for key, value in truth.items()})
    return values


def print_report(report: dict[str, dict]) -> None:
    for side, result in report.items():
        if "ground_truth" in result:
            print(f"ground truth for side {side} ({result['images']} images, {result['ground_truth']}):")
        for label, m in ground_truth_scores(result).items():
            print(f"  {label:>8} vs truth: L1 {m['l1']:.4f}  PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}")
        if "metrics" in result:
            m = result["metrics"]
            real = f" vs {m['real_images']} real images" if m["real"] else ""
            values = "  ".join(f"{key} {value:.6g}" for key, value in m["values"].items())
            print(f"metrics {m['direction']} ({m['images']} translations{real}): {values}")


if __name__ == "__main__":
    sys.exit(main())
