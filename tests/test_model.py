"""The cycle_gan model's step, losses, image pool and learning-rate policies."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from data import create_dataset
from models import create_model
from models.image_pool import ImagePool
from models.losses import GANLoss, gradient_penalty
from models.schedulers import build_scheduler
from options import parse_options
from tests.conftest import TINY


def tiny_model(root: Path, *extra: str):
    opt = parse_options(["--dataroot", str(root), "--seed", "0", *TINY, *extra])
    torch.manual_seed(opt.seed)
    model = create_model(opt, torch.device("cpu"))
    dataset = create_dataset(opt)
    batch = {k: torch.stack([dataset[0][k], dataset[1][k]]) for k in ("A", "B")}
    return model, batch


def snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_train_step_updates_every_network_and_returns_finite_losses(tiny_dataset: Path) -> None:
    model, batch = tiny_model(tiny_dataset)
    before = {name: snapshot(net) for name, net in model.nets.items()}
    losses = model.train_step(batch)
    assert tuple(losses) == model.loss_names
    assert all(v.dim() == 0 and not v.requires_grad and math.isfinite(v.item()) for v in losses.values())
    assert losses["cycle_A"].item() > 0 and losses["idt_A"].item() > 0
    for name, net in model.nets.items():
        changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[name][k])]
        assert changed, f"{name} did not change"
    # the reference's display order: the A row, then the B row (visdom and HTML show rows of 4)
    assert list(model.visuals()) == ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"]


def test_discriminators_get_no_gradient_during_the_generator_update(tiny_dataset: Path) -> None:
    model, batch = tiny_model(tiny_dataset)
    phase = {"now": "G"}
    grads_seen = {"G": 0, "D": 0}
    for name in ("D_A", "D_B"):
        for p in model.nets[name].parameters():
            p.register_hook(lambda g: grads_seen.__setitem__(phase["now"], grads_seen[phase["now"]] + 1))
    step_D = model.step_D

    def tracked_step_D(*args):
        phase["now"] = "D"
        return step_D(*args)

    model.step_D = tracked_step_D
    g_before = snapshot(model.nets["G_A"])
    model.train_step(batch)
    assert grads_seen["G"] == 0, "a discriminator received gradients from the generator loss"
    assert grads_seen["D"] == sum(1 for n in ("D_A", "D_B") for _ in model.nets[n].parameters())
    assert any(not torch.equal(v, g_before[k]) for k, v in model.nets["G_A"].state_dict().items())
    assert all(p.requires_grad for n in ("D_A", "D_B") for p in model.nets[n].parameters())


def test_loss_weights_follow_the_options(tiny_dataset: Path) -> None:
    model, batch = tiny_model(tiny_dataset, "--lambda_identity", "0", "--lambda_A", "0")
    losses = model.train_step(batch)
    assert losses["idt_A"].item() == 0 and losses["idt_B"].item() == 0 and losses["cycle_A"].item() == 0
    assert "idt_A" not in model.visuals()


def test_gan_loss_modes() -> None:
    pred = torch.tensor([[0.5, 2.0]])
    assert GANLoss("lsgan")(pred, True).item() == pytest.approx(((0.5 - 1) ** 2 + (2 - 1) ** 2) / 2)
    assert GANLoss("lsgan")(pred, False).item() == pytest.approx((0.25 + 4) / 2)
    bce = -(math.log(torch.sigmoid(torch.tensor(0.5)).item()) + math.log(torch.sigmoid(torch.tensor(2.0)).item())) / 2
    assert GANLoss("vanilla")(pred, True).item() == pytest.approx(bce, rel=1e-6)
    assert GANLoss("wgangp")(pred, True).item() == pytest.approx(-1.25)
    assert GANLoss("wgangp")(pred, False).item() == pytest.approx(1.25)


def test_gradient_penalty_matches_the_closed_form_for_a_linear_critic() -> None:
    critic = nn.Conv2d(3, 1, kernel_size=4, bias=False)  # output = <w, x>: gradient w everywhere
    nn.init.normal_(critic.weight, std=0.3)
    real, fake = torch.randn(4, 3, 4, 4), torch.randn(4, 3, 4, 4)
    expected = 10 * (critic.weight.norm() - 1) ** 2
    torch.testing.assert_close(gradient_penalty(critic, real, fake), expected)
    gradient_penalty(critic, real, fake).backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


def test_wgangp_discriminator_loss_includes_the_penalty(tiny_dataset: Path) -> None:
    model, batch = tiny_model(tiny_dataset, "--gan_mode", "wgangp")
    real, fake = batch["B"], torch.zeros_like(batch["B"])
    torch.manual_seed(1)
    with_gp = model.discriminator_loss(model.nets["D_A"], real, fake)
    critic = model.criterion_gan
    plain = critic(model.nets["D_A"](real), True) + critic(model.nets["D_A"](fake), False)
    torch.manual_seed(1)
    gp = gradient_penalty(model.nets["D_A"], real, fake)
    assert gp.item() > 0
    torch.testing.assert_close(with_gp, plain + gp)


def test_image_pool() -> None:
    pool = ImagePool(3, seed=0)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: images pass through
    later = torch.full((200, 1, 1, 1), 100.0)
    out = pool.query(later)
    from_pool = (out < 100).sum().item()
    assert 1 <= from_pool <= 3  # only 3 old images existed; each can be returned once
    # state round trip: the same future draws
    pool2 = ImagePool(3, seed=99)
    pool2.load_state_dict(pool.state_dict())
    probe = torch.arange(50.0, 60.0).view(10, 1, 1, 1)
    assert torch.equal(pool.query(probe.clone()), pool2.query(probe.clone()))
    assert torch.equal(ImagePool(0).query(probe), probe)


def lrs(policy: str, epochs: int, monitored=None, **kw) -> list[float]:
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, policy, **{"n_epochs": 5, "n_epochs_decay": 5, **kw})
    values = []
    for e in range(epochs):
        values.append(opt.param_groups[0]["lr"])
        opt.step()  # (no gradients: a no-op, but the scheduler expects it first)
        sched.step(monitored[e]) if policy == "plateau" else sched.step()
    return values


def test_linear_policy_is_the_reference_schedule() -> None:
    values = lrs("linear", 10)
    assert values[:5] == [1.0] * 5
    assert values[5:] == pytest.approx([1 - k / 6 for k in range(1, 6)])
    assert lrs("linear", 3, epoch_count=6) == pytest.approx([1 - 1 / 6, 1 - 2 / 6, 1 - 3 / 6])


def test_cosine_anneals_over_the_whole_run_and_never_climbs() -> None:
    values = lrs("cosine", 16)
    assert values[0] == 1.0 and values[5] == pytest.approx(0.5)
    assert all(b <= a for a, b in zip(values, values[1:], strict=False))
    assert values[-1] == pytest.approx(0.0, abs=1e-12)


def test_step_policy() -> None:
    assert lrs("step", 6, lr_decay_iters=2) == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_plateau_policy_reacts_to_the_monitored_value() -> None:
    flat = lrs("plateau", 12, monitored=[1.0] * 12)
    assert flat[-1] == pytest.approx(0.2)  # reduced after 5 epochs without improvement
    improving = lrs("plateau", 12, monitored=[1.0 / (e + 1) for e in range(12)])
    assert improving == [1.0] * 12


def test_no_image_pool_trains_and_d_judges_this_steps_fakes(tiny_dataset: Path) -> None:
    """``--pool_size 0`` (CUT and most modern recipes): the discriminator step gets the fakes of
    this very step, detached (the generator step has freed their graph)."""
    model, batch = tiny_model(tiny_dataset, "--pool_size", "0")
    judged: list[torch.Tensor] = []
    hook = model.nets["D_A"].register_forward_pre_hook(lambda module, args: judged.append(args[0].detach().clone()))
    for _ in range(2):
        losses = model.train_step(batch)
        assert all(math.isfinite(v.item()) for v in losses.values())
    hook.remove()
    # per step D_A sees: fake_B in the G step, then real_B and fake_B in one call in the D step
    # (instance norm: each sample's output is its own, see CycleGANModel.forwards_batchable)
    assert len(judged) == 4
    n = batch["B"].shape[0]
    for step in (0, 1):
        g_fake, d_both = judged[2 * step : 2 * step + 2]
        d_real, d_fake = d_both.split(n)
        assert torch.equal(d_real, batch["B"]) and torch.equal(d_fake, g_fake)
    assert not torch.equal(judged[0], judged[2])  # the second step's fakes are new ones
    assert model.pools["B"].images == [] and model.pools["A"].images == []
