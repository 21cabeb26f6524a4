"""scripts/convert_checkpoint.py: the reference's per-network files <-> our <tag>.pth, both ways."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch

import test as test_script
import train
from engine.checkpoint import load_checkpoint, save_checkpoint
from models.networks import define_D, define_G, patch_reference_state, reference_bias_free_keys
from scripts import convert_checkpoint
from tests.conftest import assert_same_state
from tests.test_train_test import eval_args, run_args

REFERENCE_NAMES = {"G_A": "G_resnet9_ngf8", "G_B": "G_resnet9_ngf8", "D_A": "D_basic_ndf8", "D_B": "D_basic_ndf8"}


def reference_run(fixtures: Path, folder: Path, tag: str = "latest") -> Path:
    """The reference's files of a cycle_gan run, from the fixtures: <tag>_net_{G_A,G_B,D_A,D_B}.pth."""
    folder.mkdir(parents=True, exist_ok=True)
    for net, fixture in REFERENCE_NAMES.items():
        shutil.copy(fixtures / f"{fixture}.pth", folder / f"{tag}_net_{net}.pth")
    return folder


def convert(*args: str | Path) -> int:
    return convert_checkpoint.main([str(a) for a in args])


def read(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def key_listing(fixtures: Path, name: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """{key: (shape, dtype)} of one network of a fixture key list."""
    text = (fixtures / name[0]).read_text()
    section = re.split(r"^# ", text, flags=re.M)
    lines = next(s for s in section if s.startswith(name[1])).splitlines()[1:]
    return {
        k: (tuple(int(x) for x in re.findall(r"\d+", shape)), dtype)
        for k, shape, dtype in (line.split("\t") for line in lines if "\t" in line)
    }


def test_reference_files_to_ours_and_back_are_bit_identical(reference_fixtures: Path, tmp_path: Path, capsys) -> None:
    src = reference_run(reference_fixtures, tmp_path / "ref")
    assert convert("to-ours", src, "--tag", "latest", "--out", tmp_path / "ours") == 0
    ours = load_checkpoint(tmp_path / "ours/latest.pth")
    assert set(ours) == {"format_version", "nets", "converted_from"}  # weights only: no options, no position
    assert convert("to-reference", tmp_path / "ours/latest.pth", "--out", tmp_path / "back") == 0
    for net, fixture in REFERENCE_NAMES.items():
        original, back = read(src / f"latest_net_{net}.pth"), read(tmp_path / f"back/latest_net_{net}.pth")
        assert_same_state(back, original, net)  # same keys, tensors bit for bit
        listed = key_listing(reference_fixtures, ("keys_small.txt", fixture))
        assert {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in back.items()} == listed
        assert all(v.device.type == "cpu" for v in back.values())


def test_full_size_networks_to_reference_match_the_reference_keys(reference_fixtures: Path, tmp_path: Path) -> None:
    """Our default networks through to-reference have the reference's full-size keys and shapes and
    load strictly (its loader: the InstanceNorm patch, then a strict load) into fresh networks."""
    torch.manual_seed(0)
    nets = {"G_A": define_G("resnet_9blocks"), "D_A": define_D("basic")}
    # as a DDP / torch.compile wrapped run would have keyed them: the prefixes go
    wrapped = {"module.": "G_A", "_orig_mod.": "D_A"}
    state = {name: {prefix + k: v for k, v in nets[name].state_dict().items()} for prefix, name in wrapped.items()}
    save_checkpoint(tmp_path / "7.pth", {"nets": state})
    assert convert("to-reference", tmp_path / "7.pth") == 0
    listing = "keys_full_size_G_resnet9_ngf64_D_basic_ndf64.txt"
    for name, section, fresh in (("G_A", "G ", define_G("resnet_9blocks")), ("D_A", "D ", define_D("basic"))):
        written = read(tmp_path / f"7_net_{name}.pth")
        shapes = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in written.items()}
        assert shapes == key_listing(reference_fixtures, (listing, section))
        fresh.load_state_dict(patch_reference_state(written, fresh), strict=True)
        assert_same_state(fresh.state_dict(), nets[name].state_dict(), name)


def test_trained_run_to_reference_and_back_gives_identical_networks(tiny_dataset: Path, tmp_path: Path) -> None:
    assert train.main([*run_args(tiny_dataset, tmp_path), "--max_iters", "2", "--seed", "4"]) == 0
    original = load_checkpoint(tmp_path / "ck/run/latest.pth")
    assert convert("to-reference", tmp_path / "ck/run/latest.pth", "--out", tmp_path / "ref") == 0
    assert sorted(p.name for p in (tmp_path / "ref").iterdir()) == [
        f"latest_net_{n}.pth" for n in sorted(original["nets"])
    ]
    assert convert("to-ours", tmp_path / "ref", "--out", tmp_path / "ck/copy") == 0
    assert_same_state(load_checkpoint(tmp_path / "ck/copy/latest.pth")["nets"], original["nets"], "nets")


def test_existing_files_are_kept_unless_force(reference_fixtures: Path, tmp_path: Path, capsys) -> None:
    src = reference_run(reference_fixtures, tmp_path / "ref")
    target = tmp_path / "ref/latest.pth"
    target.write_bytes(b"precious")
    assert convert("to-ours", src) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"convert_checkpoint.py: error: {target} already exists; pass --force to overwrite"]
    assert target.read_bytes() == b"precious"
    assert convert("to-ours", src, "--force") == 0
    assert set(load_checkpoint(target)["nets"]) == set(REFERENCE_NAMES)
    # to-reference: the reference's own files are there already; none is touched without --force
    before = {p.name: p.read_bytes() for p in src.glob("latest_net_*.pth")}
    (src / "latest_net_G_A.pth").unlink()  # one missing, three present: still nothing written
    del before["latest_net_G_A.pth"]
    assert convert("to-reference", target) == 2
    assert "already exist" in capsys.readouterr().err
    assert not (src / "latest_net_G_A.pth").exists()
    assert {p.name: p.read_bytes() for p in src.glob("latest_net_*.pth")} == before
    assert convert("to-reference", target, "--force") == 0
    assert_same_state(read(src / "latest_net_G_A.pth"), read(reference_fixtures / "G_resnet9_ngf8.pth"))


def test_bad_input_is_one_line_with_status_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    torch.save({"a": torch.zeros(1)}, tmp_path / "5_net_G.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    torch.save({"nets": {}}, tmp_path / "plain.pth")
    cases = [
        (("to-ours", tmp_path / "empty"), "no reference files latest_net_<name>.pth in"),
        (("to-ours", tmp_path, "--tag", "latest"), "(tags there: 5)"),
        (("to-ours", tmp_path / "nope"), "is not a folder"),
        (("to-reference", tmp_path / "junk.pth"), "cannot read checkpoint"),
        (("to-reference", tmp_path / "plain.pth"), "is not a checkpoint of this project"),
    ]
    for args, expected in cases:
        assert convert(*args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], (args, err)


def test_norm_none_biases_are_dropped_when_zero_and_refused_otherwise(
    tiny_dataset: Path, tmp_path: Path, capsys
) -> None:
    # --max_iters 0: the initial weights, whose biases are 0: the reference's layout can hold them
    assert train.main([*run_args(tiny_dataset, tmp_path), "--norm", "none", "--max_iters", "0", "--seed", "2"]) == 0
    ckpt = tmp_path / "ck/run/latest.pth"
    assert convert("to-reference", ckpt, "--out", tmp_path / "ref") == 0
    nets = load_checkpoint(ckpt)["nets"]
    fresh = define_G("resnet_6blocks", 3, 3, 8, "none")
    tied = set(reference_bias_free_keys(fresh))
    assert len(tied) == 1 + 2 + 6 * 2 + 2
    written = read(tmp_path / "ref/latest_net_G_A.pth")
    assert set(written) == set(nets["G_A"]) - tied
    # the reference's network has exactly these keys: ours built with its bias rule (batch norm's
    # conv biases) minus the batch-norm layers' own keys
    batch = define_G("resnet_6blocks", 3, 3, 8, "batch").state_dict()
    assert set(written) == {k for k in batch if not re.search(r"model\.(2|5|8|17|20)\.|conv_block\.[26]\.", k)}
    # back to ours: loads (biases 0 again) in test.py, with the note
    assert convert("to-ours", tmp_path / "ref", "--out", tmp_path / "ck/back") == 0
    capsys.readouterr()
    args = [*eval_args(tiny_dataset, tmp_path, name="back"), "--norm", "none", "--netG", "resnet_6blocks"]
    assert test_script.main([*args, "--ngf", "8", "--crop_size", "32"]) == 0
    assert "is in the reference's --norm none layout" in capsys.readouterr().out
    # trained: the biases moved away from 0, which the reference's layout cannot express
    assert train.main([*run_args(tiny_dataset, tmp_path, "t"), "--norm", "none", "--max_iters", "2"]) == 0
    assert convert("to-reference", tmp_path / "ck/t/latest.pth", "--out", tmp_path / "ref_t") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "is not zero, and the reference builds that conv without a bias under --norm none" in err[0]
    )
    assert not (tmp_path / "ref_t").exists() or not any((tmp_path / "ref_t").iterdir())
