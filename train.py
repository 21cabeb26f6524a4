"""Train a model.

    python train.py --dataroot ./datasets/horse2zebra --name h2z           # reference defaults
    python train.py --config configs/demo.yaml --lr 1e-4                   # YAML + CLI override
    python train.py --name h2z --continue_train                            # exact resume
    python train.py --help | --dry_run                                     # options, resolved

Checkpoints go to ``checkpoints/<name>/``: ``latest.pth`` every ``--save_latest_freq``
iterations and at each epoch's end, ``<epoch>.pth`` every ``--save_epoch_freq`` epochs and at
the last. Losses go to the console, ``loss_log.txt`` and ``loss_log.jsonl``; with ``--eval_freq N
--metrics fid,kid`` so do the test split's metrics every N epochs (also to visdom; an evaluation
that fails prints a warning and training goes on). An iteration is
one optimiser step (one batch). Exit status: 0 done, 2 bad input, 3 a loss became NaN/inf,
128+N stopped by signal N (after saving ``latest``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from data import create_dataset, create_train_loader
from models import BaseModel, create_model
from options import Options, format_options, gpu_ids, parse_options, save_options
from util.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    load_tagged,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from util.errors import UserError, one_line
from util.evaluation import TrainingEvaluator
from util.training import GracefulStop, LossTracker, NonFiniteLoss, seed_everything, select_device
from util.visualizer import LogRecord, Visualizer


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return train(parse_options(argv, is_train=True, prog="train.py"))
    except NonFiniteLoss as e:
        print(f"train.py: error: {e}; the last good checkpoint is kept. Try a lower --lr.", file=sys.stderr)
        return 3
    except UserError as e:  # also errors from dataset code inside DataLoader workers
        print(f"train.py: error: {one_line(e)}", file=sys.stderr)
        return 2


def train(opt: Options) -> int:
    run_dir = Path(opt.checkpoints_dir) / opt.name
    # --continue_train from our own checkpoint: read it first, its schedule holds (see resume_options)
    checkpoint = checkpoint_path(run_dir, opt.epoch)
    state = load_checkpoint(checkpoint) if opt.continue_train and checkpoint.is_file() else None
    if state is not None:
        opt = resume_options(opt, state)
    print(format_options(opt))
    device = select_device(gpu_ids(opt.gpu_ids))
    seed_everything(opt.seed)

    dataset = create_dataset(opt)
    loader, sampler = create_train_loader(dataset, opt, device)
    model = create_model(opt, device)
    model.train()
    tracker = LossTracker(model.loss_names, device)
    iters_per_epoch = math.ceil(len(dataset) / opt.batch_size)
    last_epoch = opt.n_epochs + opt.n_epochs_decay  # as the reference: --epoch_count only moves the start
    counts = ", ".join(f"{name} {n / 1e6:.3f} M" for name, n in model.parameter_counts().items())
    print(f"dataset: {len(dataset)} items per epoch ({iters_per_epoch} iterations); parameters: {counts}")
    if opt.verbose:
        for name, net in model.nets.items():
            print(f"[{name}]\n{net}")
    if opt.dry_run:
        print("dry run: nothing trained")
        return 0
    # --eval_freq: score the test split every N epochs (leaves training's randomness untouched)
    evaluate = TrainingEvaluator(opt, model, run_dir, device) if opt.eval_freq > 0 else None

    # Where to start: epoch_count for a fresh run, or exactly where the checkpoint stopped.
    epoch, epoch_samples, total_iters = opt.epoch_count, 0, 0
    if opt.continue_train:
        epoch, epoch_samples, total_iters = resume(model, tracker, run_dir, opt, state)

    run_dir.mkdir(parents=True, exist_ok=True)
    save_options(opt, run_dir / "opt.yaml")
    visualizer = Visualizer.for_training(opt, run_dir, resume=opt.continue_train, total_iters=total_iters)
    visualizer.show_text("options", format_options(opt))

    def save(tag: str | int, iter_copy: bool = False) -> Path:
        """Checkpoint ``tag`` (and ``iter_<n>`` with ``iter_copy``) of the current position."""
        tracker.check()  # never overwrite a good checkpoint with NaN weights
        state = {
            "epoch": epoch,
            "epoch_samples": epoch_samples,
            "total_iters": total_iters,
            "options": opt.to_dict(),
            **model.state_dict(),
            "tracker": tracker.state_dict(),
            "rng": rng_state(device),
        }
        if iter_copy:
            save_checkpoint(checkpoint_path(run_dir, f"iter_{total_iters}"), state)
        return save_checkpoint(checkpoint_path(run_dir, tag), state)

    total_planned = min(opt.max_iters, (last_epoch - opt.epoch_count + 1) * iters_per_epoch)
    if total_iters >= total_planned:
        if total_iters == 0 and opt.max_iters == 0:  # keep the initial weights (an untrained baseline)
            print(f"--max_iters 0: saved the initial weights as {save('latest')}")
        else:
            print(f"nothing to do: {total_iters} of {total_planned} iterations done")
        return 0
    bar = tqdm(total=total_planned, initial=total_iters, unit="it", dynamic_ncols=True, disable=None)
    status = 0
    try:
        with GracefulStop() as stop:
            while epoch <= last_epoch:
                epoch_start = time.time()
                dataset.set_epoch(epoch)
                sampler.set_epoch(epoch, start=epoch_samples)
                t_data = t_step = 0.0  # seconds waiting for data / computing, since the last log
                steps = 0
                t_end = time.perf_counter()
                for batch in stop.batches(loader):
                    t_got = time.perf_counter()
                    losses = model.train_step(batch)
                    t_done = time.perf_counter()
                    t_data, t_step, steps = t_data + t_got - t_end, t_step + t_done - t_got, steps + 1
                    total_iters += 1
                    epoch_samples += batch["A"].shape[0]
                    tracker.add(losses, total_iters)
                    bar.update(1)

                    if total_iters % opt.print_freq == 0:
                        means = tracker.mean()
                        record = LogRecord(
                            epoch,
                            math.ceil(epoch_samples / opt.batch_size),
                            total_iters,
                            means,
                            model.current_lr(),
                            t_step / steps,
                            t_data / steps,
                        )
                        visualizer.log(record)
                        bar.set_postfix({k: f"{v:.3f}" for k, v in list(means.items())[:4]}, refresh=False)
                        t_data = t_step = 0.0
                        steps = 0
                    if opt.display_freq > 0 and total_iters % opt.display_freq == 0:
                        visualizer.display(epoch, total_iters, model.visuals())
                    latest_due = total_iters % opt.save_latest_freq == 0
                    if latest_due and epoch_samples < len(dataset):  # at an epoch's end: saved below
                        save("latest", iter_copy=opt.save_by_iter)
                    if stop.requested or total_iters >= opt.max_iters:
                        break
                    t_end = time.perf_counter()

                epoch_done = epoch_samples >= len(dataset)
                if epoch_done:  # step the LR, then save the position "start of the next epoch"
                    lr = model.update_learning_rate(monitored_value(model, tracker))
                    seconds = time.time() - epoch_start
                    tqdm.write(f"End of epoch {epoch} / {last_epoch}: {seconds:.1f} s, next lr {lr:.3g}")
                    epoch, epoch_samples = epoch + 1, 0
                    if (epoch - 1) % opt.save_epoch_freq == 0 or epoch - 1 == last_epoch:
                        save(epoch - 1)
                    save("latest", iter_copy=opt.save_by_iter and latest_due)
                    if evaluate is not None and ((epoch - 1) % opt.eval_freq == 0 or epoch - 1 == last_epoch):
                        scored = evaluate(model, epoch - 1)  # after saving; a failure only warns
                        visualizer.log_metrics(epoch - 1, total_iters, scored.values, scored.info)
                if stop.requested or total_iters >= opt.max_iters:
                    path = checkpoint_path(run_dir, "latest") if epoch_done else save("latest")
                    if stop.requested:
                        print(
                            f"stopped at iteration {total_iters}; saved {path}; resume with --continue_train",
                            file=sys.stderr,
                        )
                        status = 128 + stop.signum
                    else:
                        print(f"reached --max_iters {opt.max_iters}; saved {path}")
                    break
    finally:
        bar.close()
        visualizer.close()
    if status == 0:
        print(f"training done: {total_iters} iterations; checkpoints in {run_dir}")
    return status


def monitored_value(model: BaseModel, tracker: LossTracker) -> float | None:
    """The epoch mean of the losses the model asks the ``plateau`` policy to watch."""
    means = tracker.epoch_mean()
    return sum(means[name] for name in model.monitor_losses) if model.monitor_losses else None


def resume_options(opt: Options, state: dict) -> Options:
    """A checkpoint of ours knows its epoch: its learning-rate schedule was built with the run's
    ``--epoch_count``, which a resumed run must keep (the reference's users pass it by hand)."""
    saved = state["options"].get("epoch_count", opt.epoch_count)
    if opt.epoch_count != saved:
        print(f"note: --epoch_count {opt.epoch_count} ignored: the checkpoint continues at epoch {state['epoch']}")
    return opt.replace(epoch_count=saved)


def resume(
    model: BaseModel, tracker: LossTracker, run_dir: Path, opt: Options, state: dict | None
) -> tuple[int, int, int]:
    """Load the ``--epoch`` checkpoint for ``--continue_train``; returns (epoch, samples done in
    it, total iterations). ``state``: our checkpoint, already read; None: the reference's weight
    files, which resume the weights only (at ``--epoch_count``, as the reference does)."""
    if state is None:
        state, source = load_tagged(run_dir, opt.epoch, [model.checkpoint_key(n) for n in model.nets])
        model.load_networks(state["nets"], source)
        print(
            f"note: resumed the weights of {source}; optimizer state, image pools and data order start afresh at "
            f"epoch {opt.epoch_count}"
        )
        return opt.epoch_count, 0, 0
    source = str(checkpoint_path(run_dir, opt.epoch))
    model.load_state_dict(state, source=source)
    tracker.load_state_dict(state["tracker"])
    set_rng_state(state["rng"], model.device)
    print(f"resumed from {source}: epoch {state['epoch']}, iteration {state['total_iters']}")
    return state["epoch"], state["epoch_samples"], state["total_iters"]


if __name__ == "__main__":
    sys.exit(main())
