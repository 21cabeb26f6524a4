"""An exported ONNX generator (``export.py``) applied to one folder, without the training run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from models.base_model import MODELS, BaseModel
from models.networks.generators import GENERATORS
from util.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from options import Options


def architecture_file(onnx_model: str) -> Path:
    """The JSON export.py writes beside the ONNX file (``<stem>.json``)."""
    return Path(onnx_model).with_suffix(".json")


def read_architecture(onnx_model: str | None) -> dict[str, Any]:
    if not onnx_model:
        raise UserError("--model onnx needs --onnx_model FILE.onnx (written by export.py)")
    path = Path(onnx_model)
    if not path.is_file():
        raise UserError(f"--onnx_model {path}: no such file")
    info_path = architecture_file(onnx_model)
    if not info_path.is_file():
        raise UserError(f"{info_path}: missing; export.py writes it beside {path.name} (channels, size multiple)")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{info_path}: not export.py's JSON ({e})") from e
    missing = [k for k in ("input_nc", "output_nc", "size_multiple") if k not in info]
    if not isinstance(info, dict) or missing:
        raise UserError(f"{info_path}: not export.py's JSON (no {', '.join(missing) or 'object'})")
    return info


@MODELS.register("onnx")
class OnnxModel(BaseModel):
    """``python test.py --model onnx --onnx_model FILE.onnx --dataroot FOLDER --name RESULTS``.

    Its only network is an onnxruntime session of the exported file (so no checkpoint is loaded
    and no training run is needed); channels and the generator's size multiple come from the JSON
    beside it, which also sets ``--netG`` so that test.py's data pipeline sizes the images as it
    would for the trained run. Labels ``real`` and ``fake``, like ``--model test``. The exported
    network is in eval mode whatever ``--eval`` says.
    """

    test_sides = ("A",)
    trainable = False

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        parser.set_defaults(dataset_mode="single")
        parser.add_argument("--onnx_model", type=str, default=None, help="an ONNX file written by export.py")
        return parser

    @classmethod
    def resolve_options(cls, values: dict[str, Any], is_train: bool) -> None:
        info = read_architecture(values.get("onnx_model"))
        values["input_nc"], values["output_nc"] = int(info["input_nc"]), int(info["output_nc"])
        if info.get("netG") in GENERATORS.names():
            values["netG"] = info["netG"]  # the data's size multiple follows the exported generator

    def __init__(self, opt: Options, device: torch.device) -> None:
        super().__init__(opt, device)
        try:
            import onnxruntime
        except ImportError as e:
            raise UserError("--model onnx needs onnxruntime: pip install onnxruntime") from e
        self.info = read_architecture(opt.onnx_model)
        self.size_multiple = int(self.info["size_multiple"])
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = onnxruntime.InferenceSession(str(opt.onnx_model), providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for unreadable files
            raise UserError(f"--onnx_model {opt.onnx_model}: onnxruntime cannot load it ({e})") from e
        self.input_name = self.session.get_inputs()[0].name

    @torch.inference_mode()
    def inference(
        self, side: str, images: torch.Tensor, items: Sequence[dict] | None = None
    ) -> dict[str, torch.Tensor]:
        h, w = images.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise UserError(
                f"{self.opt.onnx_model} ({self.info.get('netG', 'this generator')}) needs image sides "
                f"divisible by {m}, got {h}x{w}: use --crop_size or --load_size a multiple of {m}"
            )
        real = images.to(self.device, torch.float32)
        fake = self.session.run(None, {self.input_name: real.cpu().contiguous().numpy()})[0]
        return {"real": real, "fake": torch.from_numpy(fake).to(self.device)}

    def translation_label(self, side: str) -> str:
        return "fake"
