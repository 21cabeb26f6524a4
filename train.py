"""Train a model.

    python train.py --dataroot ./datasets/horse2zebra --name h2z           # reference defaults
    python train.py --config configs/demo.yaml --lr 1e-4                   # YAML + CLI override
    python train.py --name h2z --continue_train                            # exact resume
    python train.py --help | --dry_run                                     # options, resolved
    python train.py --dataroot ./datasets/horse2zebra --gpu_ids 0,1,2,3    # 4 GPUs, one DDP process each
    python train.py --dataroot ... --gpu_ids -1 --nproc_per_node 2         # 2 CPU processes (gloo)
    torchrun --nproc_per_node 4 train.py --dataroot ... --name h2z         # 4 GPUs (README: Multi-GPU)

Checkpoints go to ``checkpoints/<name>/`` (``engine.saving`` says what is saved when). Losses go
to the console, ``loss_log.txt`` and ``loss_log.jsonl``; with ``--eval_freq N --metrics fid,kid``
so do the test split's metrics every N epochs (also to visdom; an evaluation that fails prints a
warning and training goes on). ``--use_tensorboard`` and ``--use_wandb`` add those trackers
(``monitor/tensorboard_backend.py``, ``monitor/wandb_backend.py``). An iteration is one optimiser
step (one batch). Exit status: 0 done, 2 bad input, 3 a loss became NaN/inf, 4 (one of several
processes) stopped because another was lost, 128+N stopped by signal N (after saving ``latest``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from data import BaseDataset, EpochSampler, create_dataset, create_train_loader
from data.base_dataset import preprocess_from_options
from engine import distributed, launch
from engine.evaluation import TrainingEvaluator
from engine.position import RunPosition, iterations_per_epoch, last_epoch, planned_iterations
from engine.run import Run, describe
from engine.saving import SavePolicy
from engine.signals import GracefulStop
from engine.tracking import LossTracker, NonFiniteLoss, StepTimer
from models import BaseModel, create_model
from monitor import LogRecord, Visualizer
from monitor.trackers import check_tracker_packages
from options import Options, format_options, gpu_ids, parse_options
from util.device import seed_everything, select_device
from util.errors import UserError, one_line
from util.seeds import stream_seed


def main(argv: Sequence[str] | None = None) -> int:
    try:
        opt = parse_options(argv, is_train=True, prog="train.py")
        check_tracker_packages(opt)  # --use_wandb / --use_tensorboard without the package: say so now
        if launch.wanted(opt):  # several GPUs / --nproc_per_node without torchrun: start them, as torchrun would
            return launch.launch(opt, sys.argv[1:] if argv is None else argv, script=__file__)
        # under torchrun: join the process group (a single process: nothing to join)
        distributed.init(opt.dist_timeout, cuda=bool(gpu_ids(opt.gpu_ids)) and torch.cuda.is_available())
        return train(opt)
    except NonFiniteLoss as e:
        print(
            f"train.py: error: {rank_prefix()}{e}; the last good checkpoint is kept. Try a lower --lr.", file=sys.stderr
        )
        return 3
    except UserError as e:  # also errors from dataset code inside DataLoader workers
        print(f"train.py: error: {rank_prefix()}{one_line(e)}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # another rank gone: its own error (or the launcher's) says why
        if (said := distributed.lost_peer(e)) is None:
            raise
        print(f"train.py: {rank_prefix()}stopped: lost another process of the job ({said})", file=sys.stderr)
        # Linger, so that a process which failed on its own (still exiting: that is what closed
        # its connections) ends first and the launcher reports it, not this consequence.
        time.sleep(launch.PEER_LEFT_GRACE_S)
        return launch.PEER_LEFT
    finally:
        distributed.destroy()


def rank_prefix() -> str:
    """Which process an error comes from, when there are several."""
    return f"rank {distributed.rank()}: " if distributed.world_size() > 1 else ""


def train(opt: Options) -> int:
    # Set up: the run folder (and the checkpoint it resumes), device, data, model.
    run = Run(opt)
    opt = run.options(opt)
    distributed.print0(format_options(opt))
    gpus = distributed.process_gpu_ids(gpu_ids(opt.gpu_ids))
    device = select_device(gpus, preprocess_from_options(opt, train=True).fixed_size)
    seed_everything(opt.seed)
    dataset = create_dataset(opt, split="train")  # each rank: its shard of every epoch, epoch_length samples
    loader, sampler = create_train_loader(dataset, opt, device, distributed.rank(), distributed.world_size())
    model, epoch_length = create_model(opt, device), sampler.epoch_length
    model.distribute()  # under torchrun: DDP, gradients averaged over the ranks
    model.compile()  # --compile: torch.compile each network
    if distributed.rank() > 0:  # its own random stream (dropout, the penalty's draws); rank 0 keeps the run's
        seed_everything(stream_seed(opt.seed, "rank", distributed.rank()))
    model.train()
    tracker = LossTracker(model.loss_names, device)
    describe(model, epoch_length, iterations_per_epoch(epoch_length, opt.batch_size), opt)
    if opt.dry_run:
        distributed.print0("dry run: nothing trained")
        return 0
    main_rank = distributed.is_main()  # the one that writes and evaluates
    evaluate = TrainingEvaluator(opt, model, run.dir, device) if opt.eval_freq > 0 and main_rank else None

    # Where to start: --epoch_count for a fresh run, or exactly where the checkpoint stopped.
    position = run.start(opt, model, tracker)
    saves, planned = SavePolicy(opt, epoch_length), planned_iterations(opt, epoch_length)
    if position.total_iters >= planned:
        return run.nothing_to_do(position, planned)

    visualizer = Visualizer.for_training(opt, run.dir, opt.continue_train, position.total_iters, enabled=main_rank)
    visualizer.show_text("options", format_options(opt))
    bar = progress_bar(planned, position.total_iters, main_rank)
    try:
        with GracefulStop() as stop:
            while position.epoch <= last_epoch(opt):
                # One epoch (the rest of one after a resume).
                started = time.time()
                train_epoch(opt, model, dataset, loader, sampler, position, tracker, run, saves, visualizer, bar, stop)
                # Its end: the LR step, then the saves of "start of the next epoch", the evaluation.
                epoch_ended = position.epoch_done(epoch_length)
                if epoch_ended:
                    lr = model.update_learning_rate(monitored_value(model, tracker))
                    finished = position.next_epoch()
                    note(
                        f"End of epoch {finished} / {last_epoch(opt)}: {time.time() - started:.1f} s, next lr {lr:.3g}"
                    )
                    run.save(saves.at_epoch_end(finished, position), position)
                    if saves.evaluation_due(finished):  # rank 0, after saving; a failure only warns
                        if evaluate is not None:
                            scored = evaluate(model, finished)
                            visualizer.log_metrics(finished, position.total_iters, scored.values, scored.info)
                        distributed.barrier()  # the other ranks wait for it
                # Stopped early (a signal, --max_iters): save where we are and say how to go on.
                if stop.stopping or position.total_iters >= opt.max_iters:
                    return run.stopped(position, run.save(saves.at_stop(position, epoch_ended), position), stop.agreed)
    finally:
        bar.close()
        visualizer.close()
    distributed.print0(f"training done: {position.total_iters} iterations; checkpoints in {run.dir}")
    return 0


def train_epoch(
    opt: Options,
    model: BaseModel,
    dataset: BaseDataset,
    loader: DataLoader,
    sampler: EpochSampler,
    position: RunPosition,
    tracker: LossTracker,
    run: Run,
    saves: SavePolicy,
    visualizer: Visualizer,
    bar: tqdm,
    stop: GracefulStop,
) -> None:
    """The iterations of one epoch from ``position`` on: steps, logs, displays, mid-epoch saves."""
    dataset.set_epoch(position.epoch)
    sampler.set_epoch(position.epoch, start=position.epoch_samples)
    timer = StepTimer()
    for batch in stop.batches(loader):
        timer.got_batch()
        losses = model.train_step(batch)
        model.update_ema()  # --ema_decay: the generators' moving averages (nothing without it)
        timer.stepped()
        position.advance(batch["A"].shape[0])
        tracker.add(losses, position.total_iters)
        bar.update(1)
        if position.total_iters % opt.print_freq == 0:
            means = tracker.mean()
            seconds_step, seconds_data = timer.means()
            iteration = position.iteration_in_epoch(opt.batch_size)
            visualizer.log(
                LogRecord(
                    position.epoch,
                    iteration,
                    position.total_iters,
                    means,
                    model.current_lr(),
                    seconds_step,
                    seconds_data,
                )
            )
            bar.set_postfix({k: f"{v:.3f}" for k, v in list(means.items())[:4]}, refresh=False)
        if opt.display_freq > 0 and position.total_iters % opt.display_freq == 0:
            visualizer.display(position.epoch, position.total_iters, model.visuals())
        run.save(saves.during_epoch(position), position)
        stopping = stop.poll()  # every rank polls once per iteration: they stop together
        if stopping or position.total_iters >= opt.max_iters:
            return
        timer.waiting()


def progress_bar(planned: int, done: int, main_rank: bool) -> tqdm:
    """The iterations bar, on rank 0 (and only in a terminal)."""
    return tqdm(total=planned, initial=done, unit="it", dynamic_ncols=True, disable=None if main_rank else True)


def note(text: str) -> None:
    """A line on rank 0's console, above the progress bar."""
    if distributed.is_main():
        tqdm.write(text)


def monitored_value(model: BaseModel, tracker: LossTracker) -> float | None:
    """The epoch mean of the losses the model asks the ``plateau`` policy to watch."""
    means = tracker.epoch_mean()
    return sum(means[name] for name in model.monitor_losses) if model.monitor_losses else None


if __name__ == "__main__":
    sys.exit(main())
