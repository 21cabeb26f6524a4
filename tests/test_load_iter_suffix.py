"""The reference's ``--load_iter N`` (checkpoint ``iter_<N>`` instead of ``--epoch``) and
``--suffix FMT`` (the run name gets ``_<FMT formatted with the options>``), in train.py and test.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import test as test_script
import train
from engine.checkpoint import load_checkpoint
from options import parse_options
from tests.conftest import TINY
from tests.test_train_test import eval_args, run_args


def script_args(root: Path, is_train: bool) -> list[str]:
    return ["--dataroot", str(root), *(TINY if is_train else ["--gpu_ids", "-1"])]


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1]


def test_load_iter_picks_iter_checkpoints_and_conflicts_are_one_line_errors(tiny_dataset: Path, capsys) -> None:
    base = ["--dataroot", str(tiny_dataset), *TINY]
    assert parse_options([*base, "--load_iter", "4"]).epoch == "iter_4"
    assert parse_options([*base, "--load_iter", "4", "--epoch", "latest"]).epoch == "iter_4"  # latest gives way
    assert parse_options([*base, "--load_iter", "4", "--epoch", "iter_4"]).epoch == "iter_4"
    assert parse_options([*base, "--epoch", "3"]).epoch == "3"  # --load_iter 0: --epoch as before
    assert parse_options([*script_args(tiny_dataset, False), "--load_iter", "4"], is_train=False).epoch == "iter_4"
    for is_train in (True, False):
        with pytest.raises(SystemExit) as stop:
            parse_options([*script_args(tiny_dataset, is_train), "--load_iter", "4", "--epoch", "3"], is_train=is_train)
        assert stop.value.code == 2
        assert error_line(capsys).endswith("--epoch 3 and --load_iter 4 name different checkpoints: give one of them")


def test_load_iter_in_test_py_and_train_py(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    extra = "--save_latest_freq 2 --save_by_iter --max_iters 4 --seed 3".split()
    assert train.main([*run_args(tiny_dataset, tmp_path), *extra]) == 0
    iter_2 = load_checkpoint(tmp_path / "ck/run/iter_2.pth")
    capsys.readouterr()
    # test.py: the iter_2 checkpoint, not latest (iteration 4)
    assert test_script.main([*eval_args(tiny_dataset, tmp_path), "--load_iter", "2"]) == 0
    out = capsys.readouterr().out
    assert f"loaded {tmp_path / 'ck/run/iter_2.pth'}" in out
    assert (tmp_path / "res/run/test_iter_2/index.html").is_file()
    # a missing one: the existing one-line error listing the checkpoints there
    assert test_script.main([*eval_args(tiny_dataset, tmp_path), "--load_iter", "3"]) == 2
    line = error_line(capsys)
    assert "no checkpoint 'iter_3'" in line and "available: iter_2, iter_4, latest" in line
    # train.py --continue_train --load_iter 2: resumes at iteration 2 from iter_2, not latest (4)
    resume = [*run_args(tiny_dataset, tmp_path), "--continue_train", "--load_iter", "2", "--max_iters", "3"]
    assert train.main(resume) == 0
    out = capsys.readouterr().out
    assert f"resumed from {tmp_path / 'ck/run/iter_2.pth'}: epoch {iter_2['epoch']}, iteration 2" in out
    latest = load_checkpoint(tmp_path / "ck/run/latest.pth")
    assert latest["total_iters"] == 3 and latest["options"]["epoch"] == "iter_2"


def test_suffix_names_the_run_in_train_and_test(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    suffix = ["--suffix", "{netG}_c{crop_size}_n{ngf}"]
    args = [*run_args(tiny_dataset, tmp_path, name="exp"), "--seed", "1", "--max_iters", "2", *suffix]
    assert train.main(args) == 0
    run = tmp_path / "ck" / "exp_resnet_6blocks_c32_n8"
    saved = yaml.safe_load((run / "opt.yaml").read_text())
    assert (saved["name"], saved["suffix"]) == ("exp_resnet_6blocks_c32_n8", "{netG}_c{crop_size}_n{ngf}")
    assert not (tmp_path / "ck" / "exp").exists()
    # test.py with the same --suffix finds the run: the fields it does not set (netG, crop_size,
    # ngf: test.py's defaults differ) are the run's own
    capsys.readouterr()
    assert test_script.main([*eval_args(tiny_dataset, tmp_path, name="exp"), *suffix]) == 0
    assert f"loaded {run / 'latest.pth'}" in capsys.readouterr().out
    # a field set to another value: no run matches; the name from this command's values, not there
    assert test_script.main([*eval_args(tiny_dataset, tmp_path, name="exp"), "--ngf", "16", *suffix]) == 2
    assert "no checkpoint 'latest' in " + str(tmp_path / "ck" / "exp_resnet_9blocks_c256_n16") in error_line(capsys)
    assert (tmp_path / "res/exp_resnet_6blocks_c32_n8/test_latest/index.html").is_file()
    # and so does train.py --continue_train: the same run, its name not suffixed twice
    assert train.main([*args, "--continue_train", "--max_iters", "3"]) == 0
    assert load_checkpoint(run / "latest.pth")["total_iters"] == 3
    assert yaml.safe_load((run / "opt.yaml").read_text())["name"] == "exp_resnet_6blocks_c32_n8"
    # the run's full name works without --suffix, as before
    assert test_script.main(eval_args(tiny_dataset, tmp_path, name="exp_resnet_6blocks_c32_n8")) == 0


def test_suffix_without_name_extends_the_default_name(tiny_dataset: Path) -> None:
    opt = parse_options(["--dataroot", str(tiny_dataset), *TINY, "--suffix", "{name}_{model}"])
    assert opt.name == "tiny_cycle_gan_tiny_cycle_gan_cycle_gan"


@pytest.mark.parametrize(
    ("suffix", "is_train", "expected"),
    [
        ("{nope}", True, "--suffix '{nope}': unknown field {nope}; valid fields: "),
        ("{lr}", False, "unknown field {lr} (an option of the other script only: name the run with --name instead)"),
        ("size{", True, "--suffix 'size{' is not a valid format ("),
        ("{}", True, "--suffix '{}' is not a valid format ("),
        ("{dataroot}", True, "which is not a folder name"),
    ],
)
def test_bad_suffix_is_a_one_line_error(tiny_dataset: Path, capsys, suffix: str, is_train: bool, expected: str) -> None:
    with pytest.raises(SystemExit) as stop:
        parse_options([*script_args(tiny_dataset, is_train), "--suffix", suffix], is_train=is_train)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and expected in err[1]  # argparse's usage line, then the error
    if "valid fields" in err[1]:
        assert "crop_size, " in err[1] and "netG, " in err[1]
