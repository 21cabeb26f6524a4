"""pix2pix: the model's step against a plain-torch re-computation of the reference's, its options,
checkpoints (ours and the reference's per-network files), exact resume, test time (train vs eval
mode, the reference's unet_128 fixture) and the aligned dataset's pixel registration."""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import test as test_script
import train
from data import create_dataset
from data.aligned_halves import extract_halves
from data.base_dataset import DATASETS
from engine.checkpoint import load_checkpoint, load_inference_checkpoint
from metrics import evaluate_dirs, load_inception
from models import create_model
from options import parse_options
from tests.conftest import QUIET_CPU, TINY, assert_same_state
from util.errors import UserError

CPU = torch.device("cpu")
# TINY's architecture for test.py (which takes no training flags such as --display_id)
TINY_TEST = ["--ngf", "8", "--netG", "resnet_6blocks", "--load_size", "36", "--crop_size", "32"]
TINY_TEST += ["--num_threads", "0", "--gpu_ids", "-1"]


def rotate_channels(rgb: np.ndarray) -> np.ndarray:
    """The known pixelwise function B = f(A) of the registration tests: R, G, B -> G, B, R. It
    commutes exactly with per-channel resampling (resize, crop, flip), and it is not an involution,
    so A and B cannot be confused."""
    return rgb[..., [1, 2, 0]]


def textured(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with every pixel different from its neighbours: a shifted or flipped crop cannot match."""
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_aligned(folder: Path, count: int, width: int = 32, height: int = 32, seed: int = 0) -> list[Path]:
    """``count`` A | B PNGs (halves of ``width`` x ``height``) with B = rotate_channels(A)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        a = textured(width, height, rng)
        path = folder / f"{i:03d}.png"
        Image.fromarray(np.concatenate([a, rotate_channels(a)], axis=1)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def aligned_root(tmp_path: Path) -> Path:
    root = tmp_path / "facades"
    write_aligned(root / "train", 3, seed=1)
    write_aligned(root / "test", 2, seed=2)
    return root


def train_args(root: Path, tmp_path: Path, name: str = "p2p") -> list[str]:
    return ["--dataroot", str(root), "--name", name, "--checkpoints_dir", str(tmp_path / "ck"), "--model", "pix2pix"]


def test_options_follow_the_reference(aligned_root: Path) -> None:
    opt = parse_options(["--dataroot", str(aligned_root), "--model", "pix2pix"])
    assert (opt.norm, opt.netG, opt.dataset_mode, opt.pool_size, opt.gan_mode) == (
        "batch",
        "unet_256",
        "aligned",
        0,
        "vanilla",
    )
    assert opt.lambda_L1 == 100.0 and opt.no_dropout is False  # dropout stays on, unlike cycle_gan
    test_opt = parse_options(["--dataroot", str(aligned_root), "--model", "pix2pix"], is_train=False)
    assert (test_opt.norm, test_opt.netG, test_opt.dataset_mode) == ("batch", "unet_256", "aligned")
    assert test_opt.get("lambda_L1") is None  # a training option only
    # conditional D: it sees input_nc + output_nc channels; test time builds G alone
    opt = parse_options(["--dataroot", str(aligned_root), "--model", "pix2pix", *TINY, "--input_nc", "1"])
    model = create_model(opt, CPU)
    assert set(model.nets) == {"G", "D"}
    first_conv = next(m for m in model.nets["D"].modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == 1 + 3
    test_opt = parse_options(["--dataroot", str(aligned_root), "--model", "pix2pix", *TINY_TEST], is_train=False)
    assert set(create_model(test_opt, CPU).nets) == {"G"}


def test_a_pool_size_given_to_pix2pix_is_said_to_be_unused(aligned_root: Path, capsys) -> None:
    base = ["--dataroot", str(aligned_root), "--model", "pix2pix", *TINY]
    model = create_model(parse_options([*base, "--pool_size", "50"]), CPU)
    assert model.pools == {}  # pix2pix has none, as the reference
    note = "note: pix2pix's D judges each step's own fakes (no image pool): --pool_size 50 is unused"
    assert note in capsys.readouterr().out.splitlines()
    create_model(parse_options(base), CPU)  # the hook's default (0): nothing to say
    assert "pool" not in capsys.readouterr().out


def reference_step(G: nn.Module, D: nn.Module, real_A, real_B, lr: float, beta1: float, lambda_L1: float):
    """The reference's optimize_parameters, written out with plain torch: forward, D step, G step."""
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=(beta1, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=(beta1, 0.999))
    bce, l1 = nn.BCEWithLogitsLoss(), nn.L1Loss()
    fake_B = G(real_A)
    for p in D.parameters():
        p.requires_grad_(True)
    opt_D.zero_grad()
    pred_fake = D(torch.cat((real_A, fake_B), 1).detach())
    loss_D_fake = bce(pred_fake, torch.zeros_like(pred_fake))
    pred_real = D(torch.cat((real_A, real_B), 1))
    loss_D_real = bce(pred_real, torch.ones_like(pred_real))
    (0.5 * (loss_D_fake + loss_D_real)).backward()
    opt_D.step()
    D_grads = [p.grad.clone() for p in D.parameters()]
    for p in D.parameters():
        p.requires_grad_(False)
    opt_G.zero_grad()
    pred = D(torch.cat((real_A, fake_B), 1))
    loss_G_GAN = bce(pred, torch.ones_like(pred))
    loss_G_L1 = l1(fake_B, real_B) * lambda_L1
    (loss_G_GAN + loss_G_L1).backward()
    opt_G.step()
    losses = {"G_GAN": loss_G_GAN, "G_L1": loss_G_L1, "D_real": loss_D_real, "D_fake": loss_D_fake}
    return losses, {"G": [p.grad for p in G.parameters()], "D": D_grads}


def assert_same_adam_step(net: nn.Module, ref: nn.Module, ref_grads: list[torch.Tensor], lr: float) -> None:
    """Gradients equal up to rounding noise (1e-5 of the largest), and the weights after one Adam
    step equal where the gradient is clear of that noise. Adam's first step is about lr * sign(g):
    where g is rounding noise (the two computations sum in other orders: oneDNN picks kernels by
    buffer alignment, so it varies between runs) it may go either way, by at most 2 lr there."""
    for (name, p), q, g in zip(net.named_parameters(), ref.parameters(), ref_grads, strict=True):
        noise = 1e-5 * g.abs().max().item()
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=noise, msg=f"gradient of {name}")
        clear = g.abs() > noise
        torch.testing.assert_close(p.detach()[clear], q.detach()[clear], rtol=1e-5, atol=1e-6, msg=name)
        off = (p.detach() - q.detach())[~clear].abs()
        assert off.numel() == 0 or off.max().item() <= 2 * lr * (1 + 1e-3), name
    for (name, b), c in zip(net.named_buffers(), ref.buffers(), strict=True):  # batch norm's running stats
        torch.testing.assert_close(b, c, rtol=1e-5, atol=1e-6, msg=name)


def test_one_step_is_the_reference_step(aligned_root: Path) -> None:
    """Same initial weights, same batch, same dropout draws: the losses, the updated G and D
    (batch-norm statistics included) and D's gradients equal the reference's step, D updated first
    and G judged by the updated D; D's gradients are those of its own loss only (the G update
    gives it none)."""
    args = ["--dataroot", str(aligned_root), "--model", "pix2pix", *TINY, "--batch_size", "2", "--seed", "4"]
    opt = parse_options(args)
    assert opt.no_dropout is False  # dropout in G: the RNG order of the two computations must agree
    model = create_model(opt, CPU)
    G0, D0 = copy.deepcopy(model.nets["G"]), copy.deepcopy(model.nets["D"])
    initial = copy.deepcopy(model.nets["G"].state_dict())
    dataset = create_dataset(opt, "train")
    batch = {key: torch.stack([dataset[i][key] for i in (0, 1)]) for key in ("A", "B")}

    torch.manual_seed(11)
    losses = model.train_step(batch)
    torch.manual_seed(11)
    expected, grads = reference_step(G0, D0, batch["A"], batch["B"], opt.lr, opt.beta1, opt.lambda_L1)

    assert list(losses) == ["G_GAN", "G_L1", "D_real", "D_fake"]
    for name, value in losses.items():
        assert value.dim() == 0 and not value.requires_grad
        torch.testing.assert_close(value, expected[name].detach(), rtol=1e-6, atol=1e-6, msg=name)
    # D's gradients are those of its own loss alone: the G update added nothing to them
    for name, ref in (("G", G0), ("D", D0)):
        assert_same_adam_step(model.nets[name], ref, grads[name], opt.lr)
    # the step changed the weights (so the comparison above compares something)
    assert not torch.equal(model.nets["G"].state_dict()["model.1.weight"], initial["model.1.weight"])
    assert set(model.visuals()) == {"real_A", "fake_B", "real_B"}


def test_train_resume_is_exact(aligned_root: Path, tmp_path: Path) -> None:
    """An interrupted run resumed with --continue_train ends bit for bit where the uninterrupted
    run ends (dropout's random draws included)."""
    common = [*TINY, "--n_epochs", "1", "--n_epochs_decay", "2", "--seed", "5", "--max_iters", "7"]
    assert train.main([*train_args(aligned_root, tmp_path, "full"), *common]) == 0
    split = [*train_args(aligned_root, tmp_path, "split"), *common[:-1]]
    assert train.main([*split, "4"]) == 0
    assert train.main([*split, "7", "--continue_train"]) == 0
    full, again = load_checkpoint(tmp_path / "ck/full/latest.pth"), load_checkpoint(tmp_path / "ck/split/latest.pth")
    assert again["total_iters"] == 7 and set(full["nets"]) == {"G", "D"}
    for part in ("nets", "optimizers", "schedulers", "rng", "tracker"):
        assert_same_state(full[part], again[part], part)


def test_reference_weight_files_load_for_test_and_continue_train(aligned_root: Path, tmp_path: Path) -> None:
    """The reference's latest_net_G.pth / latest_net_D.pth (bare state dicts) are read by test.py
    and by train.py --continue_train (which then starts from exactly those weights)."""
    args = [*train_args(aligned_root, tmp_path, "ref"), *TINY, "--seed", "2"]
    torch.manual_seed(3)
    donor = create_model(parse_options(args), CPU)
    run_dir = tmp_path / "ck" / "ref"
    run_dir.mkdir(parents=True)
    for key in ("G", "D"):
        torch.save(donor.nets[key].state_dict(), run_dir / f"latest_net_{key}.pth")
    assert train.main([*args, "--continue_train", "--max_iters", "0"]) == 0
    resumed = load_checkpoint(run_dir / "latest.pth")
    assert_same_state(resumed["nets"], {k: net.state_dict() for k, net in donor.nets.items()}, "nets")
    (run_dir / "latest.pth").unlink()
    (run_dir / "opt.yaml").unlink()
    test_args = [*train_args(aligned_root, tmp_path, "ref"), *TINY_TEST, "--results_dir", str(tmp_path / "res")]
    test_args += ["--eval"]
    assert test_script.main(test_args) == 0
    out = tmp_path / "res/ref/test_latest/images"
    real_A = torch.from_numpy(np.asarray(Image.open(out / "000_real_A.png"), dtype=np.float32)) / 127.5 - 1
    with torch.no_grad():
        expected = donor.nets["G"].eval()(real_A.permute(2, 0, 1)[None])[0]
    saved = np.asarray(Image.open(out / "000_fake_B.png"), dtype=np.int16)
    want = ((expected.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy().astype(np.int16)
    assert np.abs(saved - want).max() <= 1


def unet_opt(root: Path, tmp_path: Path, *extra: str):
    args = [*train_args(root, tmp_path, "unet"), "--netG", "unet_128", "--ngf", "8", "--no_dropout", *TINY_TEST[6:]]
    return parse_options([*args, "--crop_size", "128", *extra], is_train=False)


def test_reference_unet_fixture_reproduces_its_outputs(aligned_root: Path, tmp_path: Path, reference_fixtures) -> None:
    """The reference's batch-norm unet_128 (ngf 8) as latest_net_G.pth, loaded as test.py loads it,
    gives the reference's outputs in eval mode (running statistics) and in train mode (batch
    statistics). The fixture was made without dropout: --no_dropout."""
    run_dir = tmp_path / "ck" / "unet"
    run_dir.mkdir(parents=True)
    (run_dir / "latest_net_G.pth").write_bytes((reference_fixtures / "G_unet128_ngf8.pth").read_bytes())
    io = torch.load(reference_fixtures / "G_unet128_ngf8_io.pt", map_location="cpu", weights_only=True)
    opt = unet_opt(aligned_root, tmp_path)
    model = create_model(opt, CPU)
    checkpoint = load_inference_checkpoint(run_dir, opt.epoch, [model.checkpoint_key(n) for n in model.nets])
    model.load_networks(checkpoint.nets, checkpoint.source)
    model.eval()
    out_eval = model.inference("A", io["input"])["fake_B"]
    model.train()
    out_train = model.inference("A", io["input"])["fake_B"]
    torch.testing.assert_close(out_eval, io["output_eval"], rtol=0, atol=1e-4)
    torch.testing.assert_close(out_train, io["output_train"], rtol=0, atol=1e-4)
    # pix2pix's default U-Net has dropout layers, which hold no weights: the same file loads, and
    # in eval mode (dropout off) gives the same outputs
    args = [*train_args(aligned_root, tmp_path, "unet"), "--netG", "unet_128", "--ngf", "8", *TINY_TEST[6:]]
    with_dropout = create_model(parse_options([*args, "--crop_size", "128"], is_train=False), CPU)
    assert any(isinstance(m, nn.Dropout) for m in with_dropout.nets["G"].modules())
    with_dropout.load_networks(checkpoint.nets, checkpoint.source)
    with_dropout.eval()
    torch.testing.assert_close(with_dropout.inference("A", io["input"])["fake_B"], io["output_eval"], rtol=0, atol=1e-4)


def test_test_time_is_train_mode_unless_eval(tmp_path: Path) -> None:
    """test.py, like the reference, translates in train mode (batch statistics) unless --eval
    (running statistics): with a batch-norm unet_128 the two give different images, each the one
    its mode computes. Ground truth comes from the B halves and is scored."""
    root = tmp_path / "big"
    write_aligned(root / "train", 2, 128, 128, seed=3)
    write_aligned(root / "test", 2, 128, 128, seed=4)
    base = [*train_args(root, tmp_path, "unet"), "--netG", "unet_128", "--ngf", "8", *TINY_TEST[6:]]
    base += ["--load_size", "128", "--crop_size", "128", "--no_dropout"]
    assert train.main([*base, *QUIET_CPU, "--ndf", "8", "--max_iters", "2", "--seed", "1"]) == 0
    model = create_model(parse_options([*base, "--seed", "1"], is_train=False), CPU)
    model.load_networks(load_checkpoint(tmp_path / "ck/unet/latest.pth")["nets"], "latest")
    G = model.nets["G"]
    fakes = {}
    for mode in ("train", "eval"):
        results = tmp_path / f"res_{mode}"
        flags = ["--eval"] if mode == "eval" else []
        assert test_script.main([*base, "--results_dir", str(results), *flags]) == 0
        out = results / "unet/test_latest"
        real_A = np.asarray(Image.open(out / "images/000_real_A.png"), dtype=np.float32)
        x = torch.from_numpy(real_A / 127.5 - 1).permute(2, 0, 1)[None]
        with torch.no_grad():
            expected = copy.deepcopy(G).train(mode == "train")(x)[0]
        want = ((expected.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
        fakes[mode] = np.asarray(Image.open(out / "images/000_fake_B.png"), dtype=np.float32)
        assert np.abs(fakes[mode] - want).max() <= 1, mode
        # the ground truth saved next to the results is the B half of the test image
        ab = np.asarray(Image.open(root / "test/000.png"))
        assert np.array_equal(np.asarray(Image.open(out / "images/000_real_B.png")), ab[:, 128:])
        report = json.loads((out / "metrics.json").read_text())["A"]
        assert report["images"] == 2 and set(report) >= {"fake_B", "real_A"}
    assert np.abs(fakes["train"] - fakes["eval"]).max() > 10


# ---- the aligned dataset -----------------------------------------------------------------------------


def dataset_for(root: Path, *extra: str, phase: str = "train"):
    opt = parse_options(["--dataroot", str(root), "--model", "pix2pix", *TINY, "--phase", phase, *extra])
    return create_dataset(opt, "train")


def as_uint8(image: torch.Tensor) -> np.ndarray:
    array = ((image + 1) * 127.5).round().permute(1, 2, 0).numpy()
    return array.astype(np.uint8)


@pytest.mark.parametrize(
    ("size", "flags"),
    [
        ((36, 36), ["--load_size", "36", "--crop_size", "32"]),  # resize_and_crop at its load size
        ((40, 40), ["--load_size", "36", "--crop_size", "32"]),  # resized first
        ((50, 38), ["--preprocess", "crop", "--crop_size", "32"]),  # non-square, crop only
        ((48, 40), ["--preprocess", "scale_width_and_crop", "--load_size", "44", "--crop_size", "32"]),
    ],
)
def test_both_halves_get_the_same_crop_and_flip(tmp_path: Path, size: tuple[int, int], flags: list[str]) -> None:
    root = tmp_path / "ab"
    write_aligned(root / "train", 6, *size, seed=7)
    for direction in ("AtoB", "BtoA"):
        dataset = dataset_for(root, *flags, "--direction", direction)
        assert len(dataset) == 6
        crops = set()
        for epoch in range(4):
            dataset.set_epoch(epoch)
            for i in range(len(dataset)):
                item = dataset[i]
                assert item["A_paths"] == item["B_paths"] == str(root / "train" / f"{i:03d}.png")
                a, b = as_uint8(item["A"]), as_uint8(item["B"])
                assert a.shape == b.shape == (32, 32, 3)
                source, target = (a, b) if direction == "AtoB" else (b, a)  # source: the left half
                assert np.array_equal(target, rotate_channels(source)), (direction, epoch, i)
                crops.add(a.tobytes())
        assert len(crops) > 6  # the crops and flips did vary between epochs


def test_channels_follow_input_nc_and_output_nc_with_either_direction(tmp_path: Path) -> None:
    root = tmp_path / "ab"
    write_aligned(root / "train", 2, seed=1)
    ab = Image.open(root / "train/000.png")
    halves = {"left": ab.crop((0, 0, 32, 32)), "right": ab.crop((32, 0, 64, 32))}
    for direction, source, target in (("AtoB", "left", "right"), ("BtoA", "right", "left")):
        item = dataset_for(root, "--input_nc", "1", "--direction", direction, "--preprocess", "none", "--no_flip")[0]
        assert item["A"].shape == (1, 32, 32) and item["B"].shape == (3, 32, 32)
        assert np.array_equal(as_uint8(item["A"])[..., 0], np.asarray(halves[source].convert("L")))
        assert np.array_equal(as_uint8(item["B"]), np.asarray(halves[target]))


def test_bad_aligned_input_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ab"
    write_aligned(root / "train", 1, seed=1)
    args = [*train_args(root, tmp_path), *TINY]
    with pytest.raises(SystemExit) as exit_status:  # option errors end as argparse's do: usage, then the error
        train.main([*args, "--load_size", "30", "--crop_size", "32"])
    assert exit_status.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "train.py: error: --crop_size 32 is larger than --load_size 30"
    )
    assert train.main([*args, "--phase", "val"]) == 2
    assert "val/ (images holding A | B side by side)" in capsys.readouterr().err.strip().splitlines()[-1]
    # a file too narrow to hold two halves
    Image.new("RGB", (1, 32)).save(root / "train/001.png")
    assert train.main([*args, "--max_iters", "3", "--serial_batches"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("train.py: error: ") and "001.png: is 1 pixel wide" in err[-1]
    assert DATASETS.spec("aligned").ground_truth is True


def test_paired_scores_come_from_each_test_images_own_B_half(aligned_root: Path, tmp_path: Path, capsys) -> None:
    """--direction BtoA: the right halves are translated, the left halves are the ground truth,
    saved as <stem>_real_B.png and scored (L1 of the translation and of the do-nothing baseline,
    in [0, 1] units, from the saved files); --metrics l1,psnr,ssim give the same values. (FID/KID
    of aligned data: test_fid_and_kid_compare_with_the_extracted_target_halves.)"""
    args = [*train_args(aligned_root, tmp_path), "--direction", "BtoA"]
    assert train.main([*args, *TINY, "--max_iters", "2", "--seed", "3"]) == 0
    # whole 32 px halves, not resized: the saved real images are the files' pixels
    test_args = [*args, *TINY_TEST, "--load_size", "32", "--results_dir", str(tmp_path / "res")]
    assert test_script.main([*test_args, "--metrics", "l1,psnr,ssim"]) == 0
    out = tmp_path / "res/p2p/test_latest"
    report = json.loads((out / "metrics.json").read_text())["A"]
    loaded = {label: [] for label in ("real_A", "fake_B", "real_B")}
    for i in range(2):
        ab = np.asarray(Image.open(aligned_root / f"test/{i:03d}.png"), dtype=np.float64)
        for label in loaded:
            loaded[label].append(np.asarray(Image.open(out / f"images/{i:03d}_{label}.png"), dtype=np.float64))
        assert np.array_equal(loaded["real_A"][i], ab[:, 32:]) and np.array_equal(loaded["real_B"][i], ab[:, :32])
    for label in ("fake_B", "real_A"):
        l1 = np.mean([np.abs(x - y).mean() / 255 for x, y in zip(loaded[label], loaded["real_B"], strict=True)])
        assert report[label]["l1"] == pytest.approx(l1, abs=1e-6), label
    assert report["images"] == 2 and report["metrics"]["direction"] == "BtoA"
    assert report["metrics"]["values"] == report["fake_B"]
    assert "fake_B vs truth: L1" in capsys.readouterr().out


# ---- FID/KID: the target halves as a folder of real images ----------------------------------------


def halves_of(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) halves of an A | B file, cut here with numpy (independently of data.aligned_halves)."""
    ab = np.asarray(Image.open(path).convert("RGB"))
    half = ab.shape[1] // 2
    return ab[:, :half], ab[:, half : 2 * half]


def folder_pixels(folder: Path) -> dict[str, np.ndarray]:
    """Every file of ``folder`` (recursively) by its relative path without extension -> its pixels."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).with_suffix("").as_posix(): np.asarray(Image.open(p)) for p in files}


def expected_halves(source: Path, right: bool, grey: bool = False) -> dict[str, np.ndarray]:
    expected = {}
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        half = halves_of(path)[1 if right else 0]
        if grey:
            half = np.asarray(Image.fromarray(half).convert("L"))
        expected[path.relative_to(source).with_suffix("").as_posix()] = half
    return expected


def real_opt(root: Path, cache: Path, *flags: str):
    return parse_options(
        ["--dataroot", str(root), "--model", "pix2pix", "--metrics_cache_dir", str(cache), *flags], is_train=False
    )


@pytest.fixture
def halves_root(tmp_path: Path) -> Path:
    """test/: 2 files of 64 px halves; train/: 2 files, one JPEG in a sub-folder, and one of odd
    width (its last column belongs to neither half)."""
    root = tmp_path / "ab"
    write_aligned(root / "test", 2, 64, 64, seed=11)
    write_aligned(root / "train", 2, 64, 64, seed=12)
    rng = np.random.default_rng(13)
    (root / "train/sub").mkdir()
    Image.fromarray(textured(128, 64, rng)).save(root / "train/sub/jpeg.jpg", quality=90)
    Image.fromarray(textured(129, 64, rng)).save(root / "train/odd.png")
    return root


def test_fid_real_folders_hold_exactly_the_target_halves(halves_root: Path, tmp_path: Path) -> None:
    """AtoB: the right halves; BtoA: the left ones; --output_nc 1: greyscale; whole, pixel for pixel,
    one PNG per file with its stem (sub-folders kept), for each split asked."""
    cache = tmp_path / "cache"
    cases = [("AtoB", [], True, False), ("BtoA", [], False, False), ("AtoB", ["--output_nc", "1"], True, True)]
    seen = set()
    for direction, flags, right, grey in cases:
        opt = real_opt(halves_root, cache, "--direction", direction, *flags)
        folders = DATASETS.spec("aligned").real_folders(opt, "A", ["test", "train"])
        assert [f.name for f in folders] == ["test", "train"] and str(cache) in str(folders[0])
        for folder, split in zip(folders, ["test", "train"], strict=True):
            got, want = folder_pixels(folder), expected_halves(halves_root / split, right, grey)
            assert sorted(got) == sorted(want) and all(p.suffix == ".png" for p in folder.rglob("*.*"))
            for stem, pixels in want.items():
                assert got[stem].shape == pixels.shape and np.array_equal(got[stem], pixels), (direction, stem)
        seen.add(folders[0])
    assert len(seen) == 3  # each half and channel count has its own folder


def test_fid_real_halves_are_reused_until_the_source_changes(halves_root: Path, tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    opt = real_opt(halves_root, cache)
    real = DATASETS.spec("aligned").real_folders
    (first,) = real(opt, "A", ["test"])
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"FID/KID: the right halves of {halves_root / 'test'} (2 images) extracted to {first}"]
    stamps = {p: p.stat().st_mtime_ns for p in first.iterdir()}
    assert real(opt, "A", ["test"]) == [first]
    assert {p: p.stat().st_mtime_ns for p in first.iterdir()} == stamps  # not rewritten
    assert capsys.readouterr().out == ""  # said once, when extracted

    # hidden build folders: one left by a killed extraction two days ago, one of a live extraction
    home = first.parent.parent
    (home / ".killed.x").mkdir()
    os.utime(home / ".killed.x", (time.time() - 2 * 86400,) * 2)
    (home / ".live.y").mkdir()
    # one file edited (new pixels; its mtime moved on, as an edit does), one added: extracted again
    edited = halves_root / "test/000.png"
    Image.fromarray(textured(128, 64, np.random.default_rng(99))).save(edited)
    stat = edited.stat()
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # whatever the clock's resolution
    write_aligned(halves_root / "extra", 1, 64, 64, seed=14)
    (halves_root / "extra/000.png").rename(halves_root / "test/002.png")
    (second,) = real(opt, "A", ["test"])
    assert second != first and not first.exists()  # the stale extraction is gone
    got, want = folder_pixels(second), expected_halves(halves_root / "test", right=True)
    assert sorted(got) == ["000", "001", "002"] and all(np.array_equal(got[k], want[k]) for k in want)
    assert "(3 images) extracted to" in capsys.readouterr().out
    # removed: extracted again too
    (halves_root / "test/001.png").unlink()
    (third,) = real(opt, "A", ["test"])
    assert third != second and sorted(folder_pixels(third)) == ["000", "002"]
    # only the live build folder is left: ours were renamed in, the killed one was cleared
    assert sorted(p.name for p in home.iterdir()) == [".live.y", third.parent.name]


def extract_after(barrier, source: str, cache: str) -> str:
    """One process's extraction, started with the others' (a pool worker: a module-level function)."""
    barrier.wait()
    return str(extract_halves(Path(source), "test", True, 3, cache))


def test_concurrent_extractions_leave_one_complete_folder(tmp_path: Path, capsys) -> None:
    """Two processes extract the same 20 files at once, so both build: one renames its build in,
    the other finds that folder there when it renames its own and uses it (a loser that gave up
    instead fails here: tried); no partial folder or temporary is left."""
    write_aligned(tmp_path / "ab/test", 20, 64, 64, seed=15)
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager, ctx.Pool(2) as pool:
        barrier = manager.Barrier(2)
        job = (barrier, str(tmp_path / "ab/test"), str(tmp_path / "cache"))
        folders = pool.starmap(extract_after, [job, job])
    assert folders[0] == folders[1]
    folder = Path(folders[0])
    got, want = folder_pixels(folder), expected_halves(tmp_path / "ab/test", right=True)
    assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)
    assert [p.name for p in folder.parent.parent.iterdir()] == [folder.parent.name]


def test_an_unwritable_metrics_cache_dir_is_a_one_line_error(halves_root: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    opt = real_opt(halves_root, tmp_path / "file/cache")  # under a file: unwritable even for root
    with pytest.raises(UserError) as error:
        DATASETS.spec("aligned").real_folders(opt, "A", ["test"])
    assert str(error.value) == (
        f"--metrics_cache_dir {tmp_path / 'file/cache'} is not writable (Not a directory): FID/KID of "
        f"--dataset_mode aligned extract the right halves of {halves_root / 'test'} into it"
    )


def test_fid_and_kid_compare_with_the_extracted_target_halves(tmp_path: Path, inception_weights: Path, capsys) -> None:
    """train.py --eval_freq 1 --metrics fid logs FID; test.py --metrics fid,kid gives the same FID for
    that checkpoint, and its FID/KID are those of the fake_B images against a folder of the B halves
    cut here (--fid_real test), or against the test and train halves pooled (train+test)."""
    root = tmp_path / "facades"
    write_aligned(root / "train", 3, 64, 64, seed=21)
    write_aligned(root / "test", 3, 64, 64, seed=22)
    cache, weights = str(tmp_path / "cache"), ["--inception_weights", str(inception_weights)]
    size = ["--load_size", "64", "--crop_size", "64"]
    # dropout on (pix2pix's default): test.py and the evaluation during training both draw its masks
    # from the run's --seed, so they translate alike
    one_epoch = ["--n_epochs", "1", "--n_epochs_decay", "0", "--seed", "5"]
    evaluating = ["--eval_freq", "1", "--metrics", "fid", "--metrics_cache_dir", cache, *weights]
    assert train.main([*train_args(root, tmp_path), *TINY, *size, *one_epoch, *evaluating]) == 0
    logged = [r for r in map(json.loads, (tmp_path / "ck/p2p/loss_log.jsonl").open()) if r["kind"] == "metrics"]
    assert [(r["epoch"], sorted(r["metrics"])) for r in logged] == [(1, ["fid_AtoB"])]

    ours = {}
    for split in ("test", "train"):  # the B halves, cut independently of the code under test
        ours[split] = tmp_path / "our_halves" / split
        ours[split].mkdir(parents=True)
        for path in sorted((root / split).iterdir()):
            Image.fromarray(halves_of(path)[1]).save(ours[split] / path.name)
    net = load_inception(inception_weights)
    test_args = [*train_args(root, tmp_path), *TINY_TEST, *size, "--metrics_cache_dir", cache, *weights]
    for fid_real, reals in (("test", [ours["test"]]), ("train+test", [ours["test"], ours["train"]])):
        results = tmp_path / f"res_{fid_real}"
        assert (
            test_script.main(
                [*test_args, "--results_dir", str(results), "--metrics", "fid,kid"] + ["--fid_real", fid_real]
            )
            == 0
        )
        report = json.loads((results / "p2p/test_latest/metrics.json").read_text())["A"]
        assert report["metrics"]["real_images"] == 3 * len(reals)
        images = results / "p2p/test_latest/images"
        direct = evaluate_dirs(images, reals, ["fid", "kid"], fake_suffix="_fake_B", inception=net)
        assert report["metrics"]["values"] == pytest.approx(direct, rel=1e-6, abs=1e-9), fid_real
        if fid_real == "test":  # the FID train.py logged for this checkpoint: the same protocol
            assert logged[0]["metrics"]["fid_AtoB"] == pytest.approx(report["metrics"]["values"]["fid"], rel=1e-6)
    out = capsys.readouterr().out
    # extracted once per split and half: by train.py (test), then by test.py's train+test (train)
    assert out.count("FID/KID: the right halves of") == 2

    # an unwritable cache: one line before anything is translated
    (tmp_path / "file").write_text("")
    bad = [*test_args, "--results_dir", str(tmp_path / "res_bad"), "--metrics", "fid"]
    assert test_script.main([*bad, "--metrics_cache_dir", str(tmp_path / "file/c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not writable (Not a directory)" in err[0]
    assert not (tmp_path / "res_bad/p2p/test_latest/images").exists()
