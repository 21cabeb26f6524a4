"""CycleGAN's eight losses and its optimiser updates, against an independent computation.

The reference below is written from the formulas of the ``CycleGANModel`` docstring (the
paper's objective), not from the model's code: the networks are only used as functions of
explicit parameter tensors (``torch.func.functional_call`` on deep copies taken before training),
the losses are written out with plain tensor arithmetic, the gradients come from
``torch.autograd.grad`` with respect to the generators' parameters only (the discriminators are
constants there: frozen by construction) and Adam is written out by hand:

    m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2,
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

Order, as in the reference implementation: generators forward, generator step, then the
discriminator step on the same fakes (detached: computed before the generator update).

lambda_A, lambda_B and lambda_identity have distinct values (3, 7, 0.3), so that swapping the
two cycle weights, using one weight for both, or a hard-coded identity weight changes the
numbers; ``test_the_comparison_detects_wrong_formulas`` shows, for each such mistake made to
the model, which losses and networks the comparison flags.

Precision: in float32 (how the project trains) one step agrees to ~1e-8, but from the second
step on the two computations differ by float32 rounding amplified through ReLU kinks and Adam's
ratio of small gradients (up to ~1e-6 on a parameter); in float64 two steps agree to ~1e-15.
So: one step in float32 at rtol 1e-5, two steps (the second one is where beta1 matters) in
float64 at rtol 1e-7, the model converted with ``.double()`` after the project built it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.func import functional_call

from data import create_dataset
from models import create_model
from options import parse_options
from tests.conftest import TINY

LAMBDA_A, LAMBDA_B, LAMBDA_IDT = 3.0, 7.0, 0.3
LR, BETA1, BETA2, EPS = 0.002, 0.3, 0.999, 1e-8  # beta1 != 0.5 and != Adam's 0.9; lr 10x the default
TOLERANCE = {torch.float32: (1e-5, 1e-8), torch.float64: (1e-7, 1e-10)}  # (rtol, atol)
LOSS_NAMES = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")

Params = dict[str, dict[str, torch.Tensor]]


def lsgan(prediction: torch.Tensor, target: float) -> torch.Tensor:
    return ((prediction - target) ** 2).mean()


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).abs().mean()


def biases_cancelled_by_instance_norm(net: nn.Module) -> set[str]:
    """Biases of convolutions followed directly by a non-affine InstanceNorm. Their effect on
    every output, so their true gradient, is zero; what autograd returns is rounding noise of
    either sign, which Adam turns into steps of up to ``lr``. Their updates cannot be compared."""
    names = set()
    for prefix, module in net.named_modules():
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (name, layer), (_, following) in zip(children, children[1:], strict=False):
                if (
                    isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d))
                    and layer.bias is not None
                    and isinstance(following, nn.InstanceNorm2d)
                    and not following.affine
                ):
                    names.add(f"{prefix}.{name}.bias" if prefix else f"{name}.bias")
    return names


class Adam:
    """Adam written out, one state per parameter tensor."""

    def __init__(self, lr: float, betas: tuple[float, float], eps: float) -> None:
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        self.t = 0
        self.m: dict[tuple[str, str], torch.Tensor] = {}
        self.v: dict[tuple[str, str], torch.Tensor] = {}

    def step(self, params: Params, grads: Params) -> Params:
        self.t += 1
        out: Params = {}
        for net, tensors in params.items():
            out[net] = {}
            for key, p in tensors.items():
                g = grads[net][key]
                m = self.b1 * self.m.get((net, key), torch.zeros_like(g)) + (1 - self.b1) * g
                v = self.b2 * self.v.get((net, key), torch.zeros_like(g)) + (1 - self.b2) * g * g
                self.m[(net, key)], self.v[(net, key)] = m, v
                m_hat, v_hat = m / (1 - self.b1**self.t), v / (1 - self.b2**self.t)
                out[net][key] = (p - self.lr * m_hat / (v_hat.sqrt() + self.eps)).detach()
        return out


class ReferenceCycleGAN:
    """The paper's CycleGAN step on explicit parameters of copies of the four networks."""

    def __init__(self, nets: dict[str, nn.Module]) -> None:
        self.nets = {name: copy.deepcopy(net) for name, net in nets.items()}
        self.params: Params = {
            name: {k: p.detach().clone() for k, p in net.named_parameters()} for name, net in self.nets.items()
        }
        self.adam_G = Adam(LR, (BETA1, BETA2), EPS)
        self.adam_D = Adam(LR, (BETA1, BETA2), EPS)
        self.last_grads: Params = {}

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, float]:
        def net(name: str, x: torch.Tensor, params: Params) -> torch.Tensor:
            return functional_call(self.nets[name], params[name], (x,))

        # generators: the discriminators' parameters are constants (no gradient is asked for them)
        g_params = {n: {k: v.clone().requires_grad_(True) for k, v in self.params[n].items()} for n in ("G_A", "G_B")}
        now = {**self.params, **g_params}
        fake_B = net("G_A", real_A, now)  # G(x)
        fake_A = net("G_B", real_B, now)  # F(y)
        losses = {
            "G_A": lsgan(net("D_A", fake_B, now), 1.0),  # D_A = D_Y judges B images
            "G_B": lsgan(net("D_B", fake_A, now), 1.0),  # D_B = D_X judges A images
            "cycle_A": l1(net("G_B", fake_B, now), real_A) * LAMBDA_A,  # ||F(G(x)) - x||
            "cycle_B": l1(net("G_A", fake_A, now), real_B) * LAMBDA_B,  # ||G(F(y)) - y||
            "idt_A": l1(net("G_A", real_B, now), real_B) * LAMBDA_B * LAMBDA_IDT,  # ||G(y) - y||
            "idt_B": l1(net("G_B", real_A, now), real_A) * LAMBDA_A * LAMBDA_IDT,  # ||F(x) - x||
        }
        total = sum(losses.values())
        keys = [(n, k) for n in ("G_A", "G_B") for k in g_params[n]]
        grads = torch.autograd.grad(total, [g_params[n][k] for n, k in keys])
        g_grads: Params = {"G_A": {}, "G_B": {}}
        for (n, k), g in zip(keys, grads, strict=True):
            g_grads[n][k] = g
        self.params.update(self.adam_G.step({n: self.params[n] for n in ("G_A", "G_B")}, g_grads))

        # discriminators: the fakes from before the generator update, detached
        d_params = {n: {k: v.clone().requires_grad_(True) for k, v in self.params[n].items()} for n in ("D_A", "D_B")}
        fake_B, fake_A = fake_B.detach(), fake_A.detach()
        losses["D_A"] = 0.5 * (lsgan(net("D_A", real_B, d_params), 1.0) + lsgan(net("D_A", fake_B, d_params), 0.0))
        losses["D_B"] = 0.5 * (lsgan(net("D_B", real_A, d_params), 1.0) + lsgan(net("D_B", fake_A, d_params), 0.0))
        keys = [(n, k) for n in ("D_A", "D_B") for k in d_params[n]]
        grads = torch.autograd.grad(losses["D_A"] + losses["D_B"], [d_params[n][k] for n, k in keys])
        d_grads: Params = {"D_A": {}, "D_B": {}}
        for (n, k), g in zip(keys, grads, strict=True):
            d_grads[n][k] = g
        self.params.update(self.adam_D.step({n: self.params[n] for n in ("D_A", "D_B")}, d_grads))
        self.last_grads = {**g_grads, **d_grads}
        return {name: value.item() for name, value in losses.items()}


def build(tiny_dataset: Path, dtype: torch.dtype = torch.float64):
    """The project's own model, built through its options and factory, and two batches of 2."""
    args = ["--dataroot", str(tiny_dataset), "--seed", "0", *TINY]
    args += ["--lambda_A", str(LAMBDA_A), "--lambda_B", str(LAMBDA_B), "--lambda_identity", str(LAMBDA_IDT)]
    args += ["--lr", str(LR), "--beta1", str(BETA1)]  # default pool (50): its first queries pass the fakes through
    opt = parse_options(args)
    torch.manual_seed(opt.seed)
    model = create_model(opt, torch.device("cpu"))
    model.train()
    for net in model.nets.values():
        net.to(dtype)  # in place: the optimisers hold the same parameter objects
    dataset = create_dataset(opt)
    pairs = ((0, 1), (2, 0))
    batches = [{k: torch.stack([dataset[i][k] for i in pair]).to(dtype) for k in ("A", "B")} for pair in pairs]
    return model, batches


def mismatches(
    model_losses: dict, ref_losses: dict, nets: dict[str, nn.Module], ref: ReferenceCycleGAN
) -> dict[str, str]:
    """What differs between the model and the reference, keyed 'loss <name>' / 'net <name>',
    with the first differing value."""
    bad = {}
    for name in LOSS_NAMES:
        rtol, atol = TOLERANCE[model_losses[name].dtype]
        got, want = model_losses[name].item(), ref_losses[name]
        if abs(got - want) > atol + rtol * abs(want):
            bad[f"loss {name}"] = f"model {got!r}, formula {want!r}"
    for name, net in nets.items():
        for key, p in net.named_parameters():
            rtol, atol = TOLERANCE[p.dtype]
            skip = key in biases_cancelled_by_instance_norm(net)
            expected = ref.params[name][key]
            if not skip and not torch.allclose(p.detach(), expected, rtol=rtol, atol=atol):
                worst = (p.detach() - expected).abs().max().item()
                bad.setdefault(f"net {name}", f"{key} differs by up to {worst:.3g}")
    return bad


def run_both(model, batches, mutate: Callable | None = None) -> tuple[list[dict[str, str]], ReferenceCycleGAN]:
    """Train the model and the reference side by side from the same weights; the mismatches
    after each step, and the reference."""
    nets = dict(model.nets)  # by role, as before any mutation
    ref = ReferenceCycleGAN(nets)
    if mutate is not None:
        mutate(model)
    found = []
    for batch in batches:
        model_losses = model.train_step(batch)
        assert tuple(model_losses) == LOSS_NAMES
        found.append(mismatches(model_losses, ref.step(batch["A"], batch["B"]), nets, ref))
    return found, ref


@pytest.mark.parametrize(("dtype", "steps"), [(torch.float32, 1), (torch.float64, 2)], ids=["float32", "float64"])
def test_losses_and_updates_match_the_formulas(tiny_dataset: Path, dtype: torch.dtype, steps: int) -> None:
    model, batches = build(tiny_dataset, dtype)
    nets = dict(model.nets)
    before = {name: {k: p.detach().clone() for k, p in net.named_parameters()} for name, net in nets.items()}
    found, ref = run_both(model, batches[:steps])
    assert found == [{}] * steps  # every step: all eight losses, all four networks' parameters
    # the comparison is not vacuous: every network moved by far more than the tolerance
    for name, net in nets.items():
        moved = max((p.detach() - before[name][k]).abs().max().item() for k, p in net.named_parameters())
        assert moved > 0.5 * LR, name
    # the biases left out really have no gradient (up to rounding), and they are a minority
    for name, net in nets.items():
        skip = biases_cancelled_by_instance_norm(net)
        grads = ref.last_grads[name]
        largest = max(g.abs().max().item() for g in grads.values())
        assert all(grads[k].abs().max().item() < 1e-4 * largest for k in skip), name
        assert len(skip) < len(grads) / 2


def ignore_lambda_B(model) -> None:
    model.opt = model.opt.replace(lambda_B=model.opt.lambda_A)


def swap_lambdas(model) -> None:
    model.opt = model.opt.replace(lambda_A=model.opt.lambda_B, lambda_B=model.opt.lambda_A)


def fixed_identity_weight(model) -> None:
    model.opt = model.opt.replace(lambda_identity=0.5)


def swap_discriminators(model) -> None:
    model.nets["D_A"], model.nets["D_B"] = model.nets["D_B"], model.nets["D_A"]


def discriminators_see_updated_fakes(model) -> None:
    step_D = model.step_D

    def regenerate(real_A, real_B, fake_A, fake_B):
        with torch.no_grad():
            fake_A, fake_B = model.nets["G_B"](real_B), model.nets["G_A"](real_A)
        return step_D(real_A, real_B, fake_A, fake_B)

    model.step_D = regenerate


def discriminators_step_first(model) -> None:
    losses_G, step_D = model.losses_G, model.step_D
    done: dict = {}

    def d_then_g(real_A, real_B, fakes):
        done.update(step_D(real_A, real_B, fakes["fake_A"], fakes["fake_B"]))
        return losses_G(real_A, real_B, fakes)

    model.losses_G = d_then_g
    model.step_D = lambda *args: dict(done)


def adam_default_beta1(model) -> None:
    for optimizer in model.optimizers.values():
        optimizer.param_groups[0]["betas"] = (0.9, 0.999)


G_NETS, D_NETS = {"net G_A", "net G_B"}, {"net D_A", "net D_B"}


MUTATIONS = [
    (ignore_lambda_B, {"loss cycle_B", "loss idt_A", *G_NETS}),
    (swap_lambdas, {"loss cycle_A", "loss cycle_B", "loss idt_A", "loss idt_B", *G_NETS}),
    (fixed_identity_weight, {"loss idt_A", "loss idt_B", *G_NETS}),
    (swap_discriminators, {"loss G_A", "loss G_B", "loss D_A", "loss D_B", *G_NETS, *D_NETS}),
    (discriminators_see_updated_fakes, {"loss D_A", "loss D_B", *D_NETS}),
    (discriminators_step_first, {"loss G_A", "loss G_B", *G_NETS}),
    (adam_default_beta1, set()),  # the first Adam step does not depend on beta1 ...
]


@pytest.mark.parametrize(("mutate", "flagged_at_step_1"), MUTATIONS, ids=[m.__name__ for m, _ in MUTATIONS])
def test_the_comparison_detects_wrong_formulas(tiny_dataset: Path, mutate: Callable, flagged_at_step_1: set) -> None:
    """A model with one of these mistakes fails the comparison of the test above (which the
    correct model passes), in exactly the places the mistake touches."""
    model, batches = build(tiny_dataset)
    found, _ = run_both(model, batches, mutate)
    assert set(found[0]) == flagged_at_step_1
    assert set(found[1]) >= flagged_at_step_1 | G_NETS  # ... the second does
