"""Colorization: pix2pix from the lightness of an image to its colours (``--model colorization``,
the reference's model of the same name, on ``--dataset_mode colorization``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import torch

from models.base_model import MODELS
from models.pix2pix_model import Pix2PixModel
from util.color import lab_to_rgb_tensor, network_to_lab
from util.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Sequence


def lab_as_rgb(light: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Network tensors (L / 50 - 1, ab / 110) -> an RGB image in [-1, 1], float32, on their device.

    The conversion is the reference's ``skimage.color.lab2rgb`` on float64 (out-of-gamut colours
    clipped as it clips them), so a displayed or saved image is the reference's up to the 8-bit
    step (saved files round to the nearest level; the reference truncates).
    float64 runs wherever the tensors are, except on Apple's MPS, which has none: there the CPU."""
    device = light.device
    compute = torch.device("cpu") if device.type == "mps" else device
    lab = network_to_lab(light.to(compute, torch.float64), ab.to(compute, torch.float64))
    return (lab_to_rgb_tensor(lab) * 2 - 1).to(device, torch.float32)


@MODELS.register("colorization")
class ColorizationModel(Pix2PixModel):
    """pix2pix with x = the L channel (1 channel, ``L / 50 - 1``) and y = the ab channels (2
    channels, ``ab / 110``): the same networks, losses and steps (``Pix2PixModel``), on data in
    CIE Lab (``data/colorization_dataset.py``). Only the images differ: they are shown and saved in
    RGB, as the reference shows them::

        real_A      the L channel as a grey image (L / 50 - 1 read as [-1, 1], the reference's display)
        real_B_rgb  Lab(L, true ab) -> RGB: the original image (to the Lab round trip)
        fake_B_rgb  Lab(L, G(L))    -> RGB: the colourised image

    test.py saves them as ``<stem>_<label>.png``; the test items carry the true ab (the dataset's
    ``ground_truth``), so real_B_rgb is the ground truth that fake_B_rgb is scored against
    (L1/PSNR/SSIM in RGB). The conversion runs only when images are asked for (``visuals``,
    ``inference``), not at every training step.
    """

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        Pix2PixModel.modify_options(parser, is_train)
        parser.set_defaults(dataset_mode="colorization")  # whose hook sets --input_nc 1 --output_nc 2
        return parser

    @classmethod
    def resolve_options(cls, values: dict[str, Any], is_train: bool) -> None:
        """Its images are Lab split as L (input) and ab (output): other channel counts (another
        ``--dataset_mode``'s data, say) cannot be shown or saved, so they are a one-line error."""
        if (values["input_nc"], values["output_nc"]) != (1, 2):
            raise UserError(
                f"--model colorization maps the L channel to the ab channels (--input_nc 1 --output_nc 2), "
                f"got --input_nc {values['input_nc']} --output_nc {values['output_nc']}"
                f" (--dataset_mode {values['dataset_mode']})"
            )

    @staticmethod
    def to_rgb(images: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """pix2pix's images of L and ab tensors (real_A, fake_B and, when known, real_B) -> the
        labelled RGB images, in the reference's order."""
        light = images["real_A"]
        rgb = {"real_A": light}
        if "real_B" in images:
            rgb["real_B_rgb"] = lab_as_rgb(light, images["real_B"])
        rgb["fake_B_rgb"] = lab_as_rgb(light, images["fake_B"])
        return rgb

    def visuals(self) -> dict[str, torch.Tensor]:
        images = super().visuals()
        return self.to_rgb(images) if images else {}

    @torch.inference_mode()
    def inference(
        self, side: str, images: torch.Tensor, items: Sequence[dict] | None = None
    ) -> dict[str, torch.Tensor]:
        return self.to_rgb(super().inference(side, images, items))

    def translation_label(self, side: str) -> str:
        return "fake_B_rgb"

    def ground_truth_label(self, side: str) -> str | None:
        return "real_B_rgb"
