"""A runnable template for a new model (``--model template``).

Copy this file to ``<name>_model.py``, rename the class, register it with
``@MODELS.register("<name>")`` and import the module in ``models/__init__.py``.

The template learns a paired mapping A -> B with one generator and an L1 loss (a minimal
pix2pix without the GAN): ``python train.py --model template --dataset_mode template ...``
runs end to end. Everything a model must provide is here with a comment.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from models.base_model import MODELS, BaseModel
from models.fast_path import adam

if TYPE_CHECKING:
    from collections.abc import Sequence

    from options import Options


@MODELS.register("template")
class TemplateModel(BaseModel):
    # 1. The losses train_step returns, in display order.
    loss_names = ("L1",)
    # 2. Which test folders test.py translates (<phase>A, and <phase>B for two-way models).
    test_sides = ("A",)
    # 3. Losses the ``plateau`` LR policy watches.
    monitor_losses = ("L1",)
    # 4. The networks that make the outputs (``--ema_decay`` averages their weights).
    generators = ("G",)

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        # 5. Options of this model, and default changes (between code defaults and YAML).
        parser.set_defaults(dataset_mode="template")
        if is_train:
            parser.add_argument("--lambda_regression", type=float, default=1.0, help="weight of the L1 loss")
        return parser

    def __init__(self, opt: Options, device: torch.device) -> None:
        super().__init__(opt, device)
        # 6. Networks, optimizers (and pools) go into the dicts: checkpoints save them by name.
        self.nets["G"] = self.build_generator(opt.input_nc, opt.output_nc)
        if self.is_train:
            self.criterion = nn.L1Loss()
            self.optimizers["G"] = adam(self.nets["G"].parameters(), opt.lr, (opt.beta1, 0.999))  # fused Adam
            self.setup_schedulers()
        self._visuals: dict[str, torch.Tensor] = {}

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        # 7. One step: forward, losses, backward, optimizer step. Return detached losses.
        real_A = batch["A"].to(self.device, non_blocking=True)
        real_B = batch["B"].to(self.device, non_blocking=True)
        fake_B = self.nets["G"](real_A)
        loss = self.criterion(fake_B, real_B) * self.opt.lambda_regression
        self.optimizers["G"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["G"].step()
        self._visuals = {"real_A": real_A, "fake_B": fake_B.detach(), "real_B": real_B}
        return {"L1": loss.detach()}

    def visuals(self) -> dict[str, torch.Tensor]:
        return dict(self._visuals)

    @torch.inference_mode()
    def inference(
        self, side: str, images: torch.Tensor, items: Sequence[dict] | None = None
    ) -> dict[str, torch.Tensor]:
        # 8. Test-time outputs, keyed by the labels used for file names and the HTML page. ``items``, the
        #    dataset items the batch was stacked from, is for models that need more of them (a style model).
        real_A = images.to(self.device)
        return {"real_A": real_A, "fake_B": self.generate(self.nets["G"], real_A)}

    def translation_label(self, side: str) -> str:
        return "fake_B"
