"""CUT / FastCUT: the PatchNCE loss against the paper's formula, one step's gradients, options per
mode, exact resume, test.py, and the anti-aliased generator."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import test as test_script
import train
from engine.checkpoint import load_checkpoint
from models import create_model
from models.networks import GENERATORS, define_G
from models.networks.contrastive import AntialiasResnetGenerator, PatchSampleMLP, patch_nce_loss
from models.networks.layers import BlurDownsample, BlurUpsample
from options import parse_options
from tests.conftest import QUIET_CPU, assert_same_state, write_images

CPU = torch.device("cpu")
SMALL = ["--ngf", "8", "--ndf", "8", "--load_size", "36", "--crop_size", "32", "--num_patches", "8", "--netF_nc", "16"]


@pytest.fixture
def unpaired(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for split, seed in (("trainA", 1), ("trainB", 2), ("testA", 3), ("testB", 4)):
        write_images(root / split, 3, seed=seed, tint=(1.0, 0.5, 0.5) if split.endswith("B") else (1, 1, 1))
    return root


def cut_args(root: Path, tmp_path: Path, name: str, *extra: str) -> list[str]:
    return ["--dataroot", str(root), "--name", name, "--checkpoints_dir", str(tmp_path / "ck"), "--model", "cut",
            *SMALL, *QUIET_CPU, "--print_freq", "100", *extra]  # fmt: skip


# ---- the loss ----------------------------------------------------------------------------
def paper_patch_nce(q: torch.Tensor, k: torch.Tensor, batch: int, tau: float) -> torch.Tensor:
    """The paper's formula, written out patch by patch: for query i of image b, logits
    [q_i.k_i, q_i.k_j for j != i in image b, -10 at j == i] / tau, cross entropy to index 0."""
    per_image = q.shape[0] // batch
    losses = []
    for b in range(batch):
        for i in range(per_image):
            qi = q[b * per_image + i]
            negatives = [(-10.0 if j == i else float(qi @ k[b * per_image + j])) for j in range(per_image)]
            logits = torch.tensor([float(qi @ k[b * per_image + i]), *negatives]) / tau
            losses.append(-(logits[0] - torch.logsumexp(logits, 0)))
    return torch.stack(losses)


@pytest.mark.parametrize("batch", [1, 2])
def test_patch_nce_matches_the_papers_formula(batch: int) -> None:
    gen = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(batch * 5, 6, generator=gen), dim=1)
    k = F.normalize(torch.randn(batch * 5, 6, generator=gen), dim=1)
    got = patch_nce_loss(q, k, batch, 0.07)
    torch.testing.assert_close(got, paper_patch_nce(q, k, batch, 0.07).float(), rtol=1e-5, atol=1e-5)
    # the keys are detached: only the queries receive a gradient
    q.requires_grad_(True)
    k.requires_grad_(True)
    patch_nce_loss(q, k, batch, 0.07).sum().backward()
    assert q.grad is not None and k.grad is None


def test_patch_nce_all_negatives_uses_the_whole_batch() -> None:
    gen = torch.Generator().manual_seed(1)
    q = F.normalize(torch.randn(6, 4, generator=gen), dim=1)
    k = F.normalize(torch.randn(6, 4, generator=gen), dim=1)
    torch.testing.assert_close(patch_nce_loss(q, k, 2, 0.1, all_negatives=True), paper_patch_nce(q, k, 1, 0.1))


def test_head_samples_the_same_positions_and_normalises() -> None:
    head = PatchSampleMLP([3, 5], nc=7)
    feats = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)]
    out, ids = head(feats, num_patches=6)
    assert [o.shape for o in out] == [(12, 7), (8, 7)]  # at most H*W positions (4 at 2x2)
    torch.testing.assert_close(out[0].norm(dim=1), torch.ones(12), rtol=1e-5, atol=1e-5)
    again, _ = head(feats, 6, ids)
    assert all(torch.equal(a, b) for a, b in zip(out, again, strict=True))
    # position p of image b is embedded from feats[b, :, p // W, p % W]
    p = int(ids[0][0])
    expected = F.normalize(head.mlps[0](feats[0][1, :, p // 4, p % 4]), dim=0)
    torch.testing.assert_close(out[0][6], expected, rtol=1e-5, atol=1e-6)


# ---- options and one step ----------------------------------------------------------------
def test_mode_defaults_and_explicit_flags_win(unpaired: Path, tmp_path: Path) -> None:
    cut = parse_options(cut_args(unpaired, tmp_path, "a"))
    assert (cut.nce_idt, cut.lambda_NCE, cut.flip_equivariance, cut.n_epochs, cut.n_epochs_decay) == (
        True, 1.0, False, 200, 200)  # fmt: skip
    assert (cut.nce_layers, cut.num_patches, cut.nce_T, cut.init_type, cut.pool_size) == ("0,4,8,12,16", 8, 0.07,
                                                                                          "xavier", 0)  # fmt: skip
    fast = parse_options(cut_args(unpaired, tmp_path, "b", "--cut_mode", "fastcut"))
    assert (fast.nce_idt, fast.lambda_NCE, fast.flip_equivariance, fast.n_epochs, fast.n_epochs_decay) == (
        False, 10.0, True, 150, 50)  # fmt: skip
    mixed = parse_options(cut_args(unpaired, tmp_path, "c", "--cut_mode", "fastcut", "--nce_idt", "--lambda_NCE",
                                   "2", "--n_epochs", "3", "--flip_equivariance", "False"))  # fmt: skip
    assert (mixed.nce_idt, mixed.lambda_NCE, mixed.n_epochs, mixed.n_epochs_decay, mixed.flip_equivariance) == (
        True, 2.0, 3, 50, False)  # fmt: skip


@pytest.mark.parametrize("mode", ["cut", "fastcut"])
def test_one_step_gradients(unpaired: Path, tmp_path: Path, mode: str) -> None:
    """D's parameters get no gradient from the G step; G and F do; every loss is finite."""
    opt = parse_options(cut_args(unpaired, tmp_path, mode, "--cut_mode", mode, "--seed", "0"))
    torch.manual_seed(0)
    model = create_model(opt, CPU)
    assert set(model.nets) == {"G", "D", "F"} and set(model.optimizers) == {"G", "D", "F"}
    gen = torch.Generator().manual_seed(2)
    batch = {"A": torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1, "B": torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1}
    D_before = {k: v.clone() for k, v in model.nets["D"].state_dict().items()}
    G0, D0 = copy.deepcopy(model.nets["G"]), copy.deepcopy(model.nets["D"])
    # the D step happens first; capture D's grads right after it and check the G step adds none
    step_D = model.step_D
    seen = {}

    def spy(real_B, fake_B):
        out = step_D(real_B, fake_B)
        seen["D"] = [p.grad.clone() for p in model.nets["D"].parameters()]
        return out

    model.step_D = spy
    losses = model.train_step(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    for p, g in zip(model.nets["D"].parameters(), seen["D"], strict=True):
        assert torch.equal(p.grad, g)  # untouched by the generator step
    assert any(not torch.equal(D_before[k], v) for k, v in model.nets["D"].state_dict().items())  # D did step
    for name in ("G", "F"):
        grads = [p.grad for p in model.nets[name].parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), name
    assert (losses["NCE_Y"] > 0) == (mode == "cut")
    if mode == "cut":
        expected = losses["G_GAN"] + 0.5 * (losses["NCE"] + losses["NCE_Y"])
    else:
        expected = losses["G_GAN"] + losses["NCE"]
    torch.testing.assert_close(losses["G"], expected)
    if mode == "cut":  # no flip: the paper's LSGAN terms from the weights before the step, G_GAN by the updated D
        with torch.no_grad():
            fake = G0(batch["A"])
            torch.testing.assert_close(losses["D_real"], ((D0(batch["B"]) - 1) ** 2).mean())
            torch.testing.assert_close(losses["D_fake"], (D0(fake) ** 2).mean())
            torch.testing.assert_close(losses["G_GAN"], ((model.nets["D"](fake) - 1) ** 2).mean())


def test_nce_identity_is_rejected_for_unequal_channels(unpaired: Path, tmp_path: Path) -> None:
    from util.errors import UserError

    opt = parse_options(cut_args(unpaired, tmp_path, "x", "--output_nc", "1"))
    with pytest.raises(UserError, match="--nce_idt"):
        create_model(opt, CPU)


# ---- training, resume, test.py -----------------------------------------------------------
@pytest.mark.parametrize("mode", ["cut", "fastcut"])
def test_train_resume_is_exact(unpaired: Path, tmp_path: Path, mode: str) -> None:
    """Interrupted + --continue_train ends bit for bit where the uninterrupted run ends (the
    patch positions and flips come from the saved random stream; F resumes like G and D)."""
    common = ["--cut_mode", mode, "--n_epochs", "1", "--n_epochs_decay", "2", "--seed", "5", "--max_iters"]
    assert train.main([*cut_args(unpaired, tmp_path, "full"), *common, "7"]) == 0
    assert train.main([*cut_args(unpaired, tmp_path, "split"), *common, "4"]) == 0
    assert train.main([*cut_args(unpaired, tmp_path, "split"), *common, "7", "--continue_train"]) == 0
    full, again = load_checkpoint(tmp_path / "ck/full/latest.pth"), load_checkpoint(tmp_path / "ck/split/latest.pth")
    assert again["total_iters"] == 7 and set(full["nets"]) == {"G", "D", "F"}
    for part in ("nets", "optimizers", "schedulers", "rng"):
        assert_same_state(full[part], again[part], part)


@pytest.mark.parametrize("no_antialias", [False, True])
def test_test_py_translates_testA_and_scores(tmp_path: Path, no_antialias: bool) -> None:
    """test.py on a CUT run: only A -> B, the saved translation is the trained G's, and with
    testA_gt/ it scores. A run trained with --no_antialias is rebuilt so by test.py from opt.yaml
    (no flag needed): its checkpoint loads strictly into the plain-downsampling layout."""
    from scripts.make_demo_dataset import make_dataset

    root = tmp_path / "demo"
    make_dataset(root, seed=0, size=32, n_train=2, n_test=2, force=False)
    extra = ["--no_antialias"] if no_antialias else []
    assert (
        train.main([*cut_args(root, tmp_path, "d"), "--max_iters", "2", "--seed", "0", "--load_size", "32", *extra])
        == 0
    )
    results = tmp_path / "res"
    args = ["--dataroot", str(root), "--name", "d", "--checkpoints_dir", str(tmp_path / "ck"), "--model", "cut",
            "--results_dir", str(results), "--num_threads", "0", "--gpu_ids", "-1", "--metrics", "l1"]  # fmt: skip
    assert test_script.main(args) == 0
    out = results / "d/test_latest"
    images = sorted(p.name for p in (out / "images").iterdir())
    # only A -> B: the input, its translation and (ground truth given) the truth; nothing of side B
    assert images and {name.split("_", 1)[1] for name in images} == {"real_A.png", "fake_B.png", "gt_B.png"}
    assert sum(name.endswith("_fake_B.png") for name in images) == len(list((root / "testA").iterdir()))
    # the saved translation is the trained G's output on the saved input
    state = load_checkpoint(tmp_path / "ck/d/latest.pth")["nets"]["G"]
    G = AntialiasResnetGenerator(3, 3, 8, n_blocks=9, antialias=not no_antialias)
    G.load_state_dict(state)
    first = next(n for n in images if n.endswith("_real_A.png"))
    real = torch.from_numpy(np.asarray(Image.open(out / "images" / first), dtype=np.float32)) / 127.5 - 1
    with torch.no_grad():
        want = ((G.eval()(real.permute(2, 0, 1)[None])[0].clamp(-1, 1) + 1) * 127.5).round()
    saved = np.asarray(Image.open(out / "images" / first.replace("_real_A", "_fake_B")), dtype=np.int16)
    assert np.abs(saved - want.permute(1, 2, 0).numpy().astype(np.int16)).max() <= 1
    report = json.loads((out / "metrics.json").read_text())
    assert 0 < report["A"]["metrics"]["values"]["l1"] < 2 and "B" not in report


# ---- the anti-aliased generator ----------------------------------------------------------
@pytest.mark.parametrize("size", [(32, 32), (36, 44), (64, 40)])
def test_antialiased_generator_keeps_sizes(size: tuple[int, int]) -> None:
    G = AntialiasResnetGenerator(3, 2, 4, n_blocks=2)
    assert G(torch.randn(1, 3, *size)).shape == (1, 2, *size)


def test_blur_kernels_are_the_papers() -> None:
    down, up = BlurDownsample(2), BlurUpsample(2)
    row3, row4 = torch.tensor([1.0, 2, 1]), torch.tensor([1.0, 3, 3, 1])
    torch.testing.assert_close(down.filt[1, 0], torch.outer(row3, row3) / 16)
    torch.testing.assert_close(up.filt[0, 0], torch.outer(row4, row4) / 64 * 4)
    x = torch.randn(1, 2, 6, 6)
    # down: reflect pad 1, depthwise blur, stride 2
    manual = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), (torch.outer(row3, row3) / 16).expand(2, 1, 3, 3),
                      stride=2, groups=2)  # fmt: skip
    torch.testing.assert_close(down(x), manual)
    # up: a constant image stays constant (interior and borders: replicate padding), size doubles
    const = torch.full((1, 2, 5, 7), 0.3)
    torch.testing.assert_close(up(const), torch.full((1, 2, 10, 14), 0.3))
    # and a zero-padded version would darken the border: the padding is not zeros
    assert up(const)[0, 0, 0, 0] == pytest.approx(0.3)


def test_no_antialias_gives_plain_strided_convs() -> None:
    plain = AntialiasResnetGenerator(3, 3, 4, n_blocks=1, antialias=False, antialias_up=False)
    kinds = [type(m) for m in plain.model]
    assert BlurDownsample not in kinds and BlurUpsample not in kinds
    assert [m.stride for m in plain.model if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)] == [(2, 2), (2, 2)]
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in plain.model) == 2
    # the plain variant has the existing ResnetGenerator's layout: its state dict loads into it
    reference = define_G("resnet_6blocks", ngf=4)
    plain6 = AntialiasResnetGenerator(3, 3, 4, n_blocks=6, antialias=False, antialias_up=False)
    plain6.load_state_dict(reference.state_dict())
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(plain6(x), reference(x))
    mixed = AntialiasResnetGenerator(3, 3, 4, n_blocks=1, antialias=True, antialias_up=False)
    assert sum(isinstance(m, BlurDownsample) for m in mixed.model) == 2
    assert not any(isinstance(m, BlurUpsample) for m in mixed.model)


@pytest.mark.parametrize("flags", [[], ["--no_antialias"], ["--no_antialias_up"]])
def test_cut_model_networks_follow_the_antialias_flags(unpaired: Path, tmp_path: Path, flags: list[str]) -> None:
    """By default G downsamples and upsamples with blurs and D is the blur-pool PatchGAN (the
    paper's); --no_antialias makes G's downsampling and D plain, --no_antialias_up G's upsampling."""
    model = create_model(parse_options(cut_args(unpaired, tmp_path, "aa", *flags)), CPU)
    G, D = model.nets["G"], model.nets["D"]
    assert sum(isinstance(m, BlurDownsample) for m in G.model) == (0 if "--no_antialias" in flags else 2)
    assert sum(isinstance(m, BlurUpsample) for m in G.model) == (0 if "--no_antialias_up" in flags else 2)
    blurs_in_D = sum(isinstance(m, BlurDownsample) for m in D.model)
    assert blurs_in_D == (0 if "--no_antialias" in flags else 3)
    assert (type(D).__name__ == "NLayerDiscriminator") == ("--no_antialias" in flags)
    # the head's MLPs take the chosen layers' channels (ngf 8: 3, 16, 32, 32, 32) to --netF_nc 16
    assert [mlp[0].in_features for mlp in model.nets["F"].mlps] == [3, 16, 32, 32, 32]
    assert {mlp[2].out_features for mlp in model.nets["F"].mlps} == {16}


def test_default_nce_layers_are_the_papers_modules() -> None:
    """With anti-aliasing, layers 0, 4, 8, 12, 16 are: the padded input, the two downsampling
    convs, residual blocks 1 and 5 (the paper's choice)."""
    G = AntialiasResnetGenerator(3, 3, 8, n_blocks=9)
    kinds = [type(G.model[i]).__name__ for i in (0, 4, 8, 12, 16)]
    assert kinds == ["ReflectionPad2d", "Conv2d", "Conv2d", "ResnetBlock", "ResnetBlock"]
    feats = G.encode(torch.randn(1, 3, 32, 32), [0, 4, 8, 12, 16])
    assert [f.shape[1:] for f in feats] == [(3, 38, 38), (16, 32, 32), (32, 16, 16), (32, 8, 8), (32, 8, 8)]


def test_aa_generators_are_registered() -> None:
    assert {"resnet_9blocks_aa", "resnet_6blocks_aa"} <= set(GENERATORS.names())
    assert math.prod([GENERATORS.spec("resnet_6blocks_aa").size_multiple]) == 4


# ---- several processes ---------------------------------------------------------------------
def _cut_ranks(rank: int, port: int, options: list[str], out: str) -> None:
    """One rank of a 2-process CPU job: 2 CUT steps on this rank's own data, then every network's
    parameters and gradients gathered to rank 0."""
    import os

    from engine import distributed

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    distributed.init(60, cuda=False)
    try:
        torch.manual_seed(rank)  # different initial weights (and patch draws): DDP starts from rank 0's
        model = create_model(parse_options(options), CPU)
        model.distribute()
        data = torch.Generator().manual_seed(100 + rank)
        for _ in range(2):
            model.train_step({side: torch.rand(1, 3, 32, 32, generator=data) * 2 - 1 for side in "AB"})
        result = {"nets": {name: type(net).__name__ for name, net in model.nets.items()}}
        for name, net in model.nets.items():
            for key, tensor in (
                ("params", torch.cat([p.detach().flatten() for p in net.parameters()])),
                ("grads", torch.cat([p.grad.flatten() for p in net.parameters()])),
            ):
                gathered = [torch.zeros_like(tensor) for _ in range(2)]
                torch.distributed.all_gather(gathered, tensor)
                result[f"{name}.{key}"] = gathered
        if rank == 0:
            torch.save(result, out)
    finally:
        distributed.destroy()


@pytest.mark.distributed
def test_ddp_wraps_the_head_and_ranks_agree(tmp_path: Path) -> None:
    """Two CPU processes: G, D and the head F are all DistributedDataParallel, and after 2 steps
    on different data every network's weights and (averaged) gradients agree between the ranks."""
    from tests.conftest import find_free_port

    options = cut_args(tmp_path, tmp_path, "ddp", "--seed", "1", "--cut_mode", "fastcut")
    out = tmp_path / "gathered.pt"
    torch.multiprocessing.spawn(_cut_ranks, args=(find_free_port(), options, str(out)), nprocs=2)
    result = torch.load(out, weights_only=True)
    assert result["nets"] == {name: "DistributedDataParallel" for name in ("G", "D", "F")}
    for name in ("G", "D", "F"):
        for key in ("params", "grads"):
            first, second = result[f"{name}.{key}"]
            assert torch.equal(first, second), f"{name} {key} differ between the ranks"
        assert result[f"{name}.grads"][0].abs().sum() > 0
