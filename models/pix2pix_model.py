"""pix2pix (Isola, Zhu, Zhou, Efros, CVPR 2017): paired translation with a conditional GAN."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
import torch.nn as nn

from models.base_model import MODELS, BaseModel, unwrap
from models.fast_path import adam, upcast
from models.losses import GANLoss, gradient_penalty

if TYPE_CHECKING:
    from collections.abc import Sequence

    from options import Options


@MODELS.register("pix2pix")
class Pix2PixModel(BaseModel):
    r"""pix2pix with the paper's losses and the reference's update order.

    Code and paper names: ``real_A`` = x (the input), ``real_B`` = y (its paired target),
    ``fake_B`` = G(x), ``G`` = the generator (a U-Net by default), ``D`` = the conditional
    PatchGAN, which judges an input and an output together: D(x, y) = D(cat(x, y) along channels).

    Each step: fake_B = G(x) once; then the discriminator (trainable)::

        L_D = 0.5 * (L_GAN(D(x, G(x)), 0) + L_GAN(D(x, y), 1))             (D_fake, D_real)

    with G(x) detached, one Adam step; then the generator with D frozen, judged by the updated D::

        L_G = L_GAN(D(x, G(x)), 1) + lambda_L1 * ||y - G(x)||_1              (G_GAN, G_L1)

    one Adam step. L_GAN is binary cross-entropy on logits (``--gan_mode vanilla``, the default
    here), no image pool, ``--lambda_L1`` 100, Adam(lr, (beta1, 0.999)) for G and for D.
    ``--direction BtoA`` swaps the halves of the paired images (the dataset does it).

    Subclassing: a paired model on other data keeps this step and turns its tensors into
    displayable images, either in ``as_images`` (called at every step) or, when that is costly,
    only when images are asked for, as colorization (L -> ab) does in ``visuals``/``inference``.
    """

    loss_names = ("G_GAN", "G_L1", "D_real", "D_fake")
    test_sides = ("A",)
    monitor_losses = ("G_L1",)
    generators = ("G",)

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        # the reference's pix2pix: batch norm, a U-Net for 256x256 images, paired data; dropout on
        parser.set_defaults(norm="batch", netG="unet_256", dataset_mode="aligned")
        if is_train:
            parser.set_defaults(pool_size=0, gan_mode="vanilla")
            group = parser.add_argument_group("pix2pix")
            group.add_argument("--lambda_L1", type=float, default=100.0, help="weight of the L1 loss ||y - G(x)||_1")
        return parser

    def __init__(self, opt: Options, device: torch.device) -> None:
        super().__init__(opt, device)
        self.nets["G"] = self.build_generator(opt.input_nc, opt.output_nc)
        self._visuals: dict[str, torch.Tensor] = {}
        if not self.is_train:
            return
        # conditional: D sees the input and the (real or generated) output stacked along channels
        self.nets["D"] = self.build_discriminator(opt.input_nc + opt.output_nc)
        self.criterion_gan = GANLoss(opt.gan_mode)
        self.criterion_l1 = nn.L1Loss()
        betas = (opt.beta1, 0.999)
        self.optimizers["G"] = adam(self.nets["G"].parameters(), opt.lr, betas)
        self.optimizers["D"] = adam(self.nets["D"].parameters(), opt.lr, betas)
        self.setup_schedulers()
        if opt.pool_size > 0 and "pool_size" in opt.explicit and not (dist.is_initialized() and dist.get_rank() > 0):
            # the reference's pix2pix has no pool either; a flag carried over from a CycleGAN command
            print(
                f"note: pix2pix's D judges each step's own fakes (no image pool): --pool_size {opt.pool_size} is unused"
            )

    # ---- training -----------------------------------------------------------------------
    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        fast = self.fast
        real_A = fast.prepare_input(batch["A"])
        real_B = fast.prepare_input(batch["B"])
        with fast.autocast():
            fake_B = self.nets["G"](real_A)
        losses = self.step_D(real_A, real_B, fake_B)
        losses.update(self.step_G(real_A, real_B, fake_B))
        fast.update()
        self._visuals = self.as_images(real_A, upcast(fake_B.detach()), real_B)
        return {name: losses[name].detach() for name in self.loss_names}

    def step_D(self, real_A: torch.Tensor, real_B: torch.Tensor, fake_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """The discriminator's update, first (as the reference): on (x, G(x)) with G(x) detached,
        so no gradient reaches G, then on (x, y); two forwards in that order (with batch norm a
        joint forward would normalise over both and change the math)."""
        D = self.nets["D"]
        self.set_requires_grad([D], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        fake_AB = torch.cat([real_A, fake_B.detach()], 1)
        real_AB = torch.cat([real_A, real_B], 1)
        with self.fast.autocast():
            loss_fake = self.criterion_gan(D(fake_AB), False)
            loss_real = self.criterion_gan(D(real_AB), True)
            if self.opt.gan_mode == "wgangp":  # E[D(fake)] - E[D(real)] + the penalty (see models.losses)
                loss_D = loss_fake + loss_real + upcast(gradient_penalty(D, real_AB, fake_AB))
            else:
                loss_D = 0.5 * (loss_fake + loss_real)
        self.fast.backward(loss_D)
        self.fast.step(self.optimizers["D"])
        return {"D_fake": loss_fake, "D_real": loss_real}

    def step_G(self, real_A: torch.Tensor, real_B: torch.Tensor, fake_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """The generator's update with D frozen (no gradient reaches it), judged by the D just updated."""
        D = self.nets["D"]
        self.set_requires_grad([D], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        with self.fast.autocast():
            loss_gan = self.criterion_gan(D(torch.cat([real_A, fake_B], 1)), True)
        loss_l1 = self.criterion_l1(upcast(fake_B), real_B) * self.opt.lambda_L1
        self.fast.backward(loss_gan + loss_l1)
        self.fast.step(self.optimizers["G"])
        return {"G_GAN": loss_gan, "G_L1": loss_l1}

    def visuals(self) -> dict[str, torch.Tensor]:
        return dict(self._visuals)

    def as_images(
        self, real_A: torch.Tensor, fake_B: torch.Tensor, real_B: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """The labelled images shown in training and saved at test time, in [-1, 1]; ``real_B``
        None: not known (test items without ground truth). A subclass whose tensors are not RGB
        or greyscale images (colorization's Lab channels) converts them here."""
        images = {"real_A": real_A, "fake_B": fake_B}
        if real_B is not None:
            images["real_B"] = real_B
        return images

    # ---- test time ----------------------------------------------------------------------
    @torch.inference_mode()
    def inference(
        self, side: str, images: torch.Tensor, items: Sequence[dict] | None = None
    ) -> dict[str, torch.Tensor]:
        """real_A, fake_B = G(real_A) and, when every item carries its target ("B", paired test
        data), real_B: the ground truth test.py saves as ``<stem>_real_B.png`` and scores against."""
        real_A = self.fast.prepare_input(images)
        with self.fast.autocast():
            # the plain module (see CycleGANModel.inference)
            fake_B = upcast(self.generate(unwrap(self.nets["G"]), real_A))
        real_B = None
        if items and all("B" in item for item in items):
            real_B = torch.stack([item["B"] for item in items]).to(self.device)
        return self.as_images(real_A, fake_B, real_B)

    def translation_label(self, side: str) -> str:
        return "fake_B"

    def ground_truth_label(self, side: str) -> str | None:
        return "real_B"
