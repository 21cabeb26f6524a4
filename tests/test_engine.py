"""The run's arithmetic (engine.position) and save policy (engine.saving), on their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.position import RunPosition, iterations_per_epoch, last_epoch, planned_iterations
from engine.saving import Save, SavePolicy
from options import parse_options


def options(root: Path, *extra: str):
    return parse_options(["--dataroot", str(root), "--seed", "0", "--gpu_ids", "-1", *extra])


def test_position_counts_samples_and_partial_batches() -> None:
    position = RunPosition(epoch=1)
    for batch in (2, 2, 1):  # 5 samples at batch 2: the last batch is partial
        assert not position.epoch_done(5)
        position.advance(batch)
    assert position.epoch_done(5) and position.iteration_in_epoch(2) == 3 and position.total_iters == 3
    assert position.next_epoch() == 1
    assert position.state_dict() == {"epoch": 2, "epoch_samples": 0, "total_iters": 3}
    assert RunPosition.from_state(position.state_dict()) == position
    assert iterations_per_epoch(5, 2) == 3 and iterations_per_epoch(4, 2) == 2


def test_planned_iterations_follow_epoch_count_and_max_iters(tiny_dataset: Path) -> None:
    opt = options(tiny_dataset, "--n_epochs", "3", "--n_epochs_decay", "2", "--batch_size", "2")
    assert last_epoch(opt) == 5 and planned_iterations(opt, 5) == 5 * 3
    assert planned_iterations(opt.replace(epoch_count=4), 5) == 2 * 3  # the start moves, not the end
    assert planned_iterations(opt.replace(max_iters=7), 5) == 7


def simulate(policy: SavePolicy, epoch_length: int, batch: int, epochs: int) -> list[tuple[int, Save]]:
    """(iteration, save) in the order a run of ``epochs`` epochs writes them."""
    position, written = RunPosition(epoch=1), []
    while position.epoch <= epochs:
        while not position.epoch_done(epoch_length):
            position.advance(min(batch, epoch_length - position.epoch_samples))
            written += [(position.total_iters, save) for save in policy.during_epoch(position)]
        finished = position.next_epoch()
        written += [(position.total_iters, save) for save in policy.at_epoch_end(finished, position)]
    return written


def test_save_policy_writes_what_the_options_ask_when(tiny_dataset: Path) -> None:
    # 5 samples at batch 2: iterations 3, 6, 9 end epochs 1, 2, 3 (the last epoch)
    opt = options(
        tiny_dataset,
        *"--n_epochs 2 --n_epochs_decay 1 --batch_size 2 --save_latest_freq 2 --save_epoch_freq 2".split(),
        "--save_by_iter",
    )
    lean, full = False, True
    expected = [
        (2, Save("latest", full)),
        (2, Save("iter_2", lean)),
        (3, Save("latest", full)),  # epoch 1 ends: no epoch file (every 2nd), latest
        (4, Save("latest", full)),
        (4, Save("iter_4", lean)),
        (6, Save("2", lean)),  # epoch 2 ends at a save point: epoch file, latest and its iter copy
        (6, Save("latest", full)),
        (6, Save("iter_6", lean)),
        (8, Save("latest", full)),
        (8, Save("iter_8", lean)),
        (9, Save("3", lean)),  # the last epoch always gets its file
        (9, Save("latest", full)),
    ]
    assert simulate(SavePolicy(opt, 5), 5, 2, 3) == expected
    full_files = SavePolicy(opt.replace(full_checkpoints=True), 5)
    assert all(save.full for _, save in simulate(full_files, 5, 2, 3))


@pytest.mark.parametrize(("ended", "expected"), [(True, []), (False, [Save("latest", True)])])
def test_a_stop_saves_latest_unless_the_epoch_end_just_did(tiny_dataset: Path, ended: bool, expected: list) -> None:
    assert SavePolicy(options(tiny_dataset), 3).at_stop(RunPosition(2, 1, 4), ended) == expected


def test_a_stop_right_after_a_periodic_save_does_not_save_again(tiny_dataset: Path) -> None:
    policy = SavePolicy(options(tiny_dataset).replace(save_latest_freq=2), 3)
    assert policy.during_epoch(RunPosition(2, 1, 4)) == [Save("latest", True)]
    assert policy.at_stop(RunPosition(2, 1, 4), False) == []
    assert policy.at_stop(RunPosition(2, 2, 5), False) == [Save("latest", True)]


def test_evaluation_every_n_epochs_and_at_the_last(tiny_dataset: Path) -> None:
    opt = options(tiny_dataset, "--n_epochs", "4", "--n_epochs_decay", "1", "--eval_freq", "2", "--metrics", "l1")
    assert [e for e in range(1, 6) if SavePolicy(opt, 3).evaluation_due(e)] == [2, 4, 5]
    assert not any(SavePolicy(opt.replace(eval_freq=0), 3).evaluation_due(e) for e in range(1, 6))
