"""CycleGAN (Zhu, Park, Isola, Efros, ICCV 2017): unpaired translation between domains A and B."""

from __future__ import annotations

import argparse
import itertools
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from models.base_model import MODELS, BaseModel, unwrap
from models.losses import GANLoss, gradient_penalty
from util.errors import UserError

if TYPE_CHECKING:
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
        self.optimizers["G"] = torch.optim.Adam(
            itertools.chain(self.nets["G_A"].parameters(), self.nets["G_B"].parameters()), lr=opt.lr, betas=betas
        )
        self.optimizers["D"] = torch.optim.Adam(
            itertools.chain(self.nets["D_A"].parameters(), self.nets["D_B"].parameters()), lr=opt.lr, betas=betas
        )
        self.setup_schedulers()
        self._visuals: dict[str, torch.Tensor] = {}

    # ---- training -----------------------------------------------------------------------
    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        real_A = batch["A"].to(self.device, non_blocking=True)
        real_B = batch["B"].to(self.device, non_blocking=True)
        G_A, G_B = self.nets["G_A"], self.nets["G_B"]

        fake_B = G_A(real_A)  # G(x)
        rec_A = G_B(fake_B)  # F(G(x))
        fake_A = G_B(real_B)  # F(y)
        rec_B = G_A(fake_A)  # G(F(y))

        losses, identity = self.backward_G(real_A, real_B, fake_A, fake_B, rec_A, rec_B)
        losses.update(self.backward_D(real_A, real_B, fake_A, fake_B))

        # The reference's display order: the A row (real, fake, reconstruction, identity), then
        # the B row. Detached: outputs holding their autograd history would keep the graph alive.
        row_A = {"real_A": real_A, "fake_B": fake_B, "rec_A": rec_A, "idt_B": identity.get("idt_B")}
        row_B = {"real_B": real_B, "fake_A": fake_A, "rec_B": rec_B, "idt_A": identity.get("idt_A")}
        self._visuals = {name: image.detach() for name, image in {**row_A, **row_B}.items() if image is not None}
        return {name: losses[name].detach() for name in self.loss_names}

    def backward_G(
        self, real_A, real_B, fake_A, fake_B, rec_A, rec_B
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Generator update with both discriminators frozen (no gradient reaches them). Returns
        the losses and the identity outputs (none when the identity loss is off)."""
        opt = self.opt
        D_A, D_B = self.nets["D_A"], self.nets["D_B"]
        self.set_requires_grad([D_A, D_B], False)
        self.optimizers["G"].zero_grad(set_to_none=True)

        loss_G_A = self.criterion_gan(D_A(fake_B), True)
        loss_G_B = self.criterion_gan(D_B(fake_A), True)
        loss_cycle_A = self.criterion_l1(rec_A, real_A) * opt.lambda_A
        loss_cycle_B = self.criterion_l1(rec_B, real_B) * opt.lambda_B
        identity: dict[str, torch.Tensor] = {}
        if opt.lambda_identity > 0:
            idt_A = self.nets["G_A"](real_B)  # G(y) should be y
            idt_B = self.nets["G_B"](real_A)  # F(x) should be x
            loss_idt_A = self.criterion_l1(idt_A, real_B) * opt.lambda_B * opt.lambda_identity
            loss_idt_B = self.criterion_l1(idt_B, real_A) * opt.lambda_A * opt.lambda_identity
            identity = {"idt_A": idt_A, "idt_B": idt_B}
        else:
            loss_idt_A = loss_idt_B = torch.zeros((), device=self.device)

        loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
        loss_G.backward()
        self.optimizers["G"].step()
        self.set_requires_grad([D_A, D_B], True)
        losses = {
            "G_A": loss_G_A,
            "G_B": loss_G_B,
            "cycle_A": loss_cycle_A,
            "cycle_B": loss_cycle_B,
            "idt_A": loss_idt_A,
            "idt_B": loss_idt_B,
        }
        return losses, identity

    def discriminator_loss(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss_real = self.criterion_gan(netD(real), True)
        loss_fake = self.criterion_gan(netD(fake), False)
        if self.opt.gan_mode == "wgangp":
            return loss_real + loss_fake + gradient_penalty(netD, real, fake)
        return 0.5 * (loss_real + loss_fake)

    def backward_D(self, real_A, real_B, fake_A, fake_B) -> dict[str, torch.Tensor]:
        """Discriminator update on real images and pooled fakes, detached as the reference does:
        the generator step has already freed their graph (``--pool_size 0`` hands them over as
        they are), and D's loss must not reach the generators."""
        self.optimizers["D"].zero_grad(set_to_none=True)
        fake_B, fake_A = self.pools["B"].query(fake_B.detach()), self.pools["A"].query(fake_A.detach())
        loss_D_A = self.discriminator_loss(self.nets["D_A"], real_B, fake_B)
        loss_D_B = self.discriminator_loss(self.nets["D_B"], real_A, fake_A)
        (loss_D_A + loss_D_B).backward()
        self.optimizers["D"].step()
        return {"D_A": loss_D_A, "D_B": loss_D_B}

    def visuals(self) -> dict[str, torch.Tensor]:
        return dict(self._visuals)

    # ---- test time ----------------------------------------------------------------------
    @torch.no_grad()
    def inference(self, side: str, images: torch.Tensor) -> dict[str, torch.Tensor]:
        real = images.to(self.device)
        forward, backward = ("G_A", "G_B") if side == "A" else ("G_B", "G_A")
        other = "B" if side == "A" else "A"
        # the plain modules: a DDP wrapper's forward may synchronise buffers with the other ranks,
        # which do not evaluate (rank 0 evaluates alone)
        fake = unwrap(self.nets[forward])(real)
        rec = unwrap(self.nets[backward])(fake)
        return {f"real_{side}": real, f"fake_{other}": fake, f"rec_{side}": rec}

    def translation_label(self, side: str) -> str:
        return "fake_B" if side == "A" else "fake_A"
