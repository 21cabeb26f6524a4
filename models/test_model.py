"""One generator applied to one folder: pretrained CycleGAN generators, one direction only."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import torch

from models.base_model import MODELS, BaseModel
from models.fast_path import upcast

if TYPE_CHECKING:
    from collections.abc import Sequence

    from options import Options


@MODELS.register("test")
class TestModel(BaseModel):
    """``python test.py --model test --dataroot FOLDER --name NAME [--model_suffix _A]``.

    Loads ``G`` + suffix from the run's checkpoint, or the reference's
    ``<epoch>_net_G<suffix>.pth`` file (how pretrained CycleGAN models are distributed), and
    translates every image of the folder (labels ``real`` and ``fake``).
    """

    test_sides = ("A",)
    trainable = False

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        parser.set_defaults(dataset_mode="single")
        parser.add_argument(
            "--model_suffix",
            type=str,
            default="",
            help="load G<suffix> (e.g. _A loads G_A of a cycle_gan checkpoint or latest_net_G_A.pth)",
        )
        return parser

    def __init__(self, opt: Options, device: torch.device) -> None:
        super().__init__(opt, device)
        self.nets["G"] = self.build_generator(opt.input_nc, opt.output_nc)

    def checkpoint_key(self, net_name: str) -> str:
        return net_name + self.opt.model_suffix

    @torch.inference_mode()
    def inference(
        self, side: str, images: torch.Tensor, items: Sequence[dict] | None = None
    ) -> dict[str, torch.Tensor]:
        real = self.fast.prepare_input(images)
        with self.fast.autocast():
            fake = self.generate(self.nets["G"], real)
        return {"real": real, "fake": upcast(fake)}

    def translation_label(self, side: str) -> str:
        return "fake"
