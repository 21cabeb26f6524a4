"""CycleGAN (Zhu, Park, Isola, Efros, ICCV 2017): unpaired translation between domains A and B."""

from __future__ import annotations

import argparse
import itertools
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from models.base_model import MODELS, BaseModel, unwrap
from models.fast_path import adam, upcast
from models.losses import GANLoss, discriminator_objective, gradient_penalty
from util.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from options import Options


@MODELS.register("cycle_gan")
class CycleGANModel(BaseModel):
    r"""CycleGAN with the paper's losses.

    Code and paper names: domain A = X, domain B = Y; ``G_A`` = G: X -> Y, ``G_B`` = F: Y -> X,
    ``D_A`` = D_Y (judges B images), ``D_B`` = D_X (judges A images).

    Generator step (D_A, D_B frozen), for real x in A and real y in B::

        L_G = L_GAN(G, D_Y) + L_GAN(F, D_X)                          (G_A, G_B)
            + lambda_A * ||F(G(x)) - x||_1 + lambda_B * ||G(F(y)) - y||_1     (cycle_A, cycle_B)
            + lambda_identity * (lambda_B * ||G(y) - y||_1 + lambda_A * ||F(x) - x||_1)   (idt_A, idt_B)

    with L_GAN(G, D_Y) = E[(D_Y(G(x)) - 1)^2] for ``--gan_mode lsgan`` (the default).

    Discriminator step, with fakes drawn from an image pool of the last 50 fakes::

        L_D_Y = 0.5 * (E[(D_Y(y) - 1)^2] + E[D_Y(G(x))^2])                  (D_A)
        L_D_X = 0.5 * (E[(D_X(x) - 1)^2] + E[D_X(F(y))^2])                  (D_B)

    For ``--gan_mode wgangp`` the discriminator loss is E[D(fake)] - E[D(real)] plus the
    gradient penalty 10 * E[(||grad D(x_hat)||_2 - 1)^2] (the reference never applied it).
    Adam(lr, (beta1, 0.999)) for both generators together and both discriminators together.
    """

    loss_names = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")
    test_sides = ("A", "B")
    monitor_losses = ("cycle_A", "cycle_B")
    generators = ("G_A", "G_B")

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        parser.set_defaults(no_dropout=True)  # CycleGAN's generators use no dropout
        if is_train:
            group = parser.add_argument_group("cycle_gan")
            group.add_argument("--lambda_A", type=float, default=10.0, help="weight of cycle loss A -> B -> A")
            group.add_argument("--lambda_B", type=float, default=10.0, help="weight of cycle loss B -> A -> B")
            group.add_argument(
                "--lambda_identity",
                type=float,
                default=0.5,
                help="weight of the identity loss, relative to lambda_A/lambda_B (0.5: half of them)",
            )
        return parser

    def __init__(self, opt: Options, device: torch.device) -> None:
        super().__init__(opt, device)

        self.nets["G_A"] = self.build_generator(opt.input_nc, opt.output_nc)
        self.nets["G_B"] = self.build_generator(opt.output_nc, opt.input_nc)
        if not self.is_train:
            return

        if opt.lambda_identity > 0 and opt.input_nc != opt.output_nc:
            raise UserError("the identity loss needs --input_nc == --output_nc; set --lambda_identity 0")
        self.nets["D_A"] = self.build_discriminator(opt.output_nc)  # D_Y judges B images
        self.nets["D_B"] = self.build_discriminator(opt.input_nc)  # D_X judges A images
        # Pools of fakes: "B" holds G_A's outputs (judged by D_A), "A" holds G_B's.
        self.pools = {"A": self.build_pool("A"), "B": self.build_pool("B")}
        self.criterion_gan = GANLoss(opt.gan_mode)
        self.criterion_l1 = nn.L1Loss()
        betas = (opt.beta1, 0.999)
        self.optimizers["G"] = adam(
            itertools.chain(self.nets["G_A"].parameters(), self.nets["G_B"].parameters()), opt.lr, betas
        )
        self.optimizers["D"] = adam(
            itertools.chain(self.nets["D_A"].parameters(), self.nets["D_B"].parameters()), opt.lr, betas
        )
        self.setup_schedulers()
        self._visuals: dict[str, torch.Tensor] = {}

    # ---- training -----------------------------------------------------------------------
    def forwards_batchable(self) -> bool:
        """Whether forwards of one network on different images may share one call: only when
        each sample's output depends on that sample alone (instance norm or none, no dropout).
        Batch norm would normalise over the concatenation and change the math; dropout would
        draw its masks in another order."""
        return self.opt.norm in ("instance", "none") and self.opt.no_dropout

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        real_A = self.fast.prepare_input(batch["A"])
        real_B = self.fast.prepare_input(batch["B"])
        fast = self.fast
        with fast.autocast():
            fakes = self.forward_G(real_A, real_B)
        losses, loss_G = self.losses_G(real_A, real_B, fakes)
        fast.backward(loss_G)
        fast.step(self.optimizers["G"])
        self.set_requires_grad([self.nets["D_A"], self.nets["D_B"]], True)
        losses.update(self.step_D(real_A, real_B, fakes["fake_A"], fakes["fake_B"]))
        fast.update()

        # The reference's display order: the A row (real, fake, reconstruction, identity), then
        # the B row. Detached: outputs holding their autograd history would keep the graph alive.
        row_A = {"real_A": real_A, "fake_B": fakes["fake_B"], "rec_A": fakes["rec_A"], "idt_B": fakes.get("idt_B")}
        row_B = {"real_B": real_B, "fake_A": fakes["fake_A"], "rec_B": fakes["rec_B"], "idt_A": fakes.get("idt_A")}
        self._visuals = {
            name: upcast(image.detach()) for name, image in {**row_A, **row_B}.items() if image is not None
        }
        return {name: losses[name].detach() for name in self.loss_names}

    def forward_G(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """fake_B = G(x), rec_A = F(G(x)), fake_A = F(y), rec_B = G(F(y)) and, with the identity
        loss, idt_A = G(y), idt_B = F(x). Where ``forwards_batchable`` (and x and y have one
        size), each generator's two independent forwards (G on x and on y; F on y and on x) run
        as one batch: the same math in 4 calls instead of 6 (tests/test_fast_path.py holds the
        two formulations to 1e-5)."""
        G_A, G_B = self.nets["G_A"], self.nets["G_B"]
        out: dict[str, torch.Tensor] = {}
        identity = self.opt.lambda_identity > 0
        if identity and self.forwards_batchable() and real_A.shape == real_B.shape:
            n = real_A.shape[0]
            out["fake_B"], out["idt_A"] = G_A(torch.cat([real_A, real_B])).split(n)
            out["fake_A"], out["idt_B"] = G_B(torch.cat([real_B, real_A])).split(n)
        else:
            out["fake_B"], out["fake_A"] = G_A(real_A), G_B(real_B)
            if identity:
                out["idt_A"], out["idt_B"] = G_A(real_B), G_B(real_A)  # G(y) should be y, F(x) should be x
        out["rec_A"] = G_B(out["fake_B"])  # F(G(x))
        out["rec_B"] = G_A(out["fake_A"])  # G(F(y))
        return out

    def losses_G(
        self, real_A: torch.Tensor, real_B: torch.Tensor, fakes: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The generators' losses with both discriminators frozen (no gradient reaches them; the
        caller unfreezes them after the generator step). Returns the named losses and their sum."""
        opt = self.opt
        D_A, D_B = self.nets["D_A"], self.nets["D_B"]
        self.set_requires_grad([D_A, D_B], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        with self.fast.autocast():
            pred_A, pred_B = D_A(fakes["fake_B"]), D_B(fakes["fake_A"])
        l1 = self.criterion_l1
        losses = {
            "G_A": self.criterion_gan(pred_A, True),
            "G_B": self.criterion_gan(pred_B, True),
            "cycle_A": l1(upcast(fakes["rec_A"]), real_A) * opt.lambda_A,
            "cycle_B": l1(upcast(fakes["rec_B"]), real_B) * opt.lambda_B,
        }
        if opt.lambda_identity > 0:
            losses["idt_A"] = l1(upcast(fakes["idt_A"]), real_B) * opt.lambda_B * opt.lambda_identity
            losses["idt_B"] = l1(upcast(fakes["idt_B"]), real_A) * opt.lambda_A * opt.lambda_identity
        else:
            losses["idt_A"] = losses["idt_B"] = torch.zeros((), device=self.device)
        total = sum(losses[k] for k in ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B"))
        return losses, total

    def discriminator_loss(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """0.5 * (L(D(real), 1) + L(D(fake), 0)), real and fake judged in one call where
        ``forwards_batchable`` and their sizes agree; for wgangp E[D(fake)] - E[D(real)] + the gradient penalty."""
        with self.fast.autocast():
            if self.forwards_batchable() and real.shape == fake.shape:
                pred_real, pred_fake = netD(torch.cat([real, fake])).split(real.shape[0])
            else:
                pred_real, pred_fake = netD(real), netD(fake)
            penalty = gradient_penalty(netD, real, fake) if self.opt.gan_mode == "wgangp" else None
        return discriminator_objective(self.criterion_gan, pred_real, pred_fake, penalty)

    def step_D(self, real_A, real_B, fake_A, fake_B) -> dict[str, torch.Tensor]:
        """Discriminator update on real images and pooled fakes, detached as the reference does:
        the generator step has already freed their graph (``--pool_size 0`` hands them over as
        they are), and D's loss must not reach the generators. The pools hold fp32 images."""
        self.optimizers["D"].zero_grad(set_to_none=True)
        fake_B = self.pools["B"].query(upcast(fake_B.detach()))
        fake_A = self.pools["A"].query(upcast(fake_A.detach()))
        loss_D_A = self.discriminator_loss(self.nets["D_A"], real_B, fake_B)
        loss_D_B = self.discriminator_loss(self.nets["D_B"], real_A, fake_A)
        self.fast.backward(loss_D_A + loss_D_B)
        self.fast.step(self.optimizers["D"])
        return {"D_A": loss_D_A, "D_B": loss_D_B}

    def visuals(self) -> dict[str, torch.Tensor]:
        return dict(self._visuals)

    # ---- test time ----------------------------------------------------------------------
    @torch.inference_mode()
    def inference(
        self, side: str, images: torch.Tensor, items: Sequence[dict] | None = None
    ) -> dict[str, torch.Tensor]:
        real = self.fast.prepare_input(images)
        forward, backward = ("G_A", "G_B") if side == "A" else ("G_B", "G_A")
        other = "B" if side == "A" else "A"
        # the plain modules: a DDP wrapper's forward may synchronise buffers with the other ranks,
        # which do not evaluate (rank 0 evaluates alone)
        with self.fast.autocast():
            fake = self.generate(unwrap(self.nets[forward]), real)
            rec = self.generate(unwrap(self.nets[backward]), fake)
        return {f"real_{side}": real, f"fake_{other}": upcast(fake), f"rec_{side}": upcast(rec)}

    def translation_label(self, side: str) -> str:
        return "fake_B" if side == "A" else "fake_A"
