"""Arbitrary style transfer: one feed-forward network for every style, trained on content photos
and many paintings, which stylises an image with a style it has never seen in one pass
(``--model adain``, ``--dataset_mode content_style``).

    python train.py --model adain --dataroot ./coco_wikiart --name adain \\
        --vgg_weights vgg19-dcbb9e9d.pth             # or torchvision's file in its cache
    python train.py --model adain --attention sanet --dataroot ./coco_wikiart --name sanet
    python test.py --name adain --dataroot ./coco_wikiart          # testA/ x testB/
    python test.py --name adain --dataroot photo.jpg --style_image a.jpg b.jpg --style_weights 0.7 0.3

``--attention none``: AdaIN (Huang & Belongie, "Arbitrary Style Transfer in Real-time with
Adaptive Instance Normalization", ICCV 2017). A frozen VGG-19 f, up to relu4_1, encodes a
content image c and a style image s; AdaIN gives every channel of f(c) the mean μ and standard
deviation σ of f(s)'s, and a trained decoder g (``models.networks.arbitrary_style.Decoder``)
turns the result back into an image::

    t = AdaIN(f(c), f(s)) = σ(f(s)) · (f(c) − μ(f(c))) / σ(f(c)) + μ(f(s))
    L = content_weight · MSE(f(g(t)), t)                                                  (content)
      + style_weight · Σ_{l ∈ relu1_1, relu2_1, relu3_1, relu4_1} MSE(μ_l(g(t)), μ_l(s)) + MSE(σ_l(g(t)), σ_l(s))
                                                                                          (style)

``--attention sanet``: SANet (Park & Lee, "Arbitrary Style Transfer with Style-Attentional
Networks", CVPR 2019). Style-attentional modules on relu4_1 and relu5_1 replace AdaIN
(``StyleAttention``: F_cs = merge(SA_4(c, s) + up(SA_5(c, s)))), decoded by the same decoder
g. With norm() the channel-wise mean/std normalisation and I_cc = g(F_cc), I_ss = g(F_ss) the
images made with the content (style) image as both inputs::

    L = content_weight · Σ_{l ∈ relu4_1, relu5_1} MSE(norm(f_l(g(F_cs))), norm(f_l(c)))     (content)
      + style_weight · Σ_{l ∈ relu1_1 .. relu5_1} mean/std loss as above                  (style)
      + lambda_identity1 · (MSE(I_cc, c) + MSE(I_ss, s))                                   (identity1)
      + lambda_identity2 · Σ_{l ∈ relu1_1 .. relu5_1} MSE(f_l(I_cc), f_l(c)) + MSE(f_l(I_ss), f_l(s))   (identity2)

Images meet the encoder in [0, 1] (the datasets' [-1, 1] mapped; ImageNet normalisation inside
the encoder), and the decoder makes images in that range; MSE is a mean, σ the std from the
unbiased variance plus 1e-5 (``models.networks.perceptual.channel_mean_std``, as AdaIN's code).

Defaults are the papers' (and their code's): Adam lr 1e-4 (betas 0.9, 0.999) decayed every
iteration t as lr / (1 + 5e-5 · t) (``--lr_decay``); AdaIN: content 1, style 10, batch 8; SANet:
content 1, style 3, identity 50 and 1, batch 5 (``--style_weight`` and ``--batch_size`` default
to the variant's); content and style images resized to 512x512, then random 256x256 crops, no
flips (the PyTorch ports; the Lua code resizes the shorter side to 512). The papers ran 160,000
iterations over MS-COCO and WikiArt: 16 epochs of COCO's 82,783 photos at batch 8
(``--max_iters 160000`` ends a run there, at any batch size).

Test time (``inference``, ``stylize``), with the content features f(c), each style's fused
features T_k (AdaIN: AdaIN(f(c), f(s_k)); SANet: F_cs of s_k) and ``--style_weights`` w_k::

    output = g((1 − alpha) · B + alpha · Σ_k w_k T_k)        B = f(c) (AdaIN), F_cc (SANet)

``--alpha`` (default 1) trades content for style (0 gives back the decoded content). The content
image is padded (reflection, bottom and right) to the network's size multiple, 8 for AdaIN
(three poolings down to relu4_1) and 16 for SANet (four, down to relu5_1), and to at least two
of them, so that the deepest features have 2x2 positions; the output is cropped back, so any
image size works. Style images are used at their size (the dataset resizes them to
``--style_size``), padded only when smaller than that minimum.

The encoder is a measuring instrument and a fixed part of the network: frozen, not in ``nets``
(so not in checkpoints, not wrapped by DDP), its weights from ``--vgg_weights``, torchvision's
cache (SHA-256 checked) or, for tests and smoke runs, ``--random_backbone``, drawn from
``--backbone_seed`` (default: derived from ``--seed``). Those options are architecture options:
test.py reads them from the run's ``opt.yaml`` and rebuilds the same encoder. ``nets`` holds the
decoder (and ``sanet``), trained by one Adam, ``G``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.base_model import MODELS, BaseModel, unwrap
from models.fast_path import adam, upcast
from models.networks.arbitrary_style import Decoder, StyleAttention, pad_to_multiple
from models.networks.perceptual import FeatureExtractor, adain, normalize_channels, perceptual_backbone
from models.style_losses import mean_std_loss
from util.errors import UserError
from util.flags import ARCHITECTURE, FIXED, add
from util.seeds import stream_seed

if TYPE_CHECKING:
    from options import Options

BACKBONE = "vgg19"
ATTENTIONS = ("none", "sanet")


@dataclass(frozen=True)
class Variant:
    """What ``--attention`` changes: the encoder layers, the size multiple, the paper defaults."""

    content_layers: tuple[str, ...]  # the fused features (relu4_1; SANet also relu5_1)
    style_layers: tuple[str, ...]  # the mean/std loss's
    size_multiple: int  # 2 ** (poolings before the deepest layer)
    style_weight: float
    batch_size: int
    loss_names: tuple[str, ...]


VARIANTS = {
    "none": Variant(
        content_layers=("relu4_1",),
        style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
        size_multiple=8,
        style_weight=10.0,
        batch_size=8,
        loss_names=("content", "style"),
    ),
    "sanet": Variant(
        content_layers=("relu4_1", "relu5_1"),
        style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        size_multiple=16,
        style_weight=3.0,
        batch_size=5,
        loss_names=("content", "style", "identity1", "identity2"),
    ),
}


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (datasets) -> [0, 1] (the encoder's input and the decoder's output)."""
    return (images + 1) / 2


def to_signed_range(images: torch.Tensor) -> torch.Tensor:
    """The decoder's [0, 1] images -> [-1, 1] (what is saved and shown)."""
    return images * 2 - 1


@MODELS.register("adain")
class AdaINModel(BaseModel):
    """See the module's note. ``loss_names`` gains ``identity1`` and ``identity2`` with SANet."""

    loss_names = VARIANTS["none"].loss_names
    test_sides = ("A",)
    monitor_losses = ("content", "style")  # the plateau policy watches the perceptual loss

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        parser.set_defaults(dataset_mode="content_style", load_size=512, crop_size=256, no_flip=True)
        group = parser.add_argument_group("adain")
        add(
            group,
            "--attention",
            scope=(ARCHITECTURE, FIXED),
            type=str,
            default="none",
            choices=ATTENTIONS,
            help="how content and style features are fused: none = AdaIN (Huang & Belongie 2017), sanet = "
            "style-attentional networks on relu4_1 and relu5_1 (Park & Lee 2019)",
        )
        add(
            group,
            "--backbone_seed",
            scope=(ARCHITECTURE, FIXED),
            type=int,
            default=None,
            help="seed of the --random_backbone encoder (default: derived from --seed; recorded in opt.yaml, "
            "so test.py rebuilds the same one)",
        )
        if is_train:  # test.py declares --vgg_weights and --random_backbone for every model (options/schema.py)
            add(
                group,
                "--vgg_weights",
                scope=(ARCHITECTURE,),
                type=str,
                default=None,
                help=f"{BACKBONE}'s ImageNet weights, the frozen encoder (default: torchvision's file in the torch hub "
                "cache); test.py takes the run's",
            )
            add(
                group,
                "--random_backbone",
                scope=(ARCHITECTURE, FIXED),
                action="store_true",
                help="a random encoder drawn from --backbone_seed: a smoke test, not a stylisation",
            )
            parser.set_defaults(lr=1e-4, beta1=0.9, batch_size=None, n_epochs=16, n_epochs_decay=0)
            add(group, "--content_weight", type=float, default=1.0, help="weight of the content loss")
            add(
                group,
                "--style_weight",
                type=float,
                default=None,
                help="weight of the mean/std style loss (default: 10 for AdaIN, 3 for SANet)",
            )
            add(group, "--lambda_identity1", type=float, default=50.0, help="SANet: weight of the image identity loss")
            add(group, "--lambda_identity2", type=float, default=1.0, help="SANet: weight of the feature identity loss")
            add(
                group,
                "--lr_decay",
                type=float,
                default=5e-5,
                help="the papers' per-iteration decay: step t uses lr / (1 + lr_decay * t), on top of --lr_policy "
                "(0: none)",
            )
        else:
            add(
                group,
                "--alpha",
                type=float,
                default=1.0,
                help="content-style trade-off in [0, 1]: 0 decodes the content features, 1 the fused ones",
            )
        return parser

    @classmethod
    def resolve_options(cls, values: dict[str, Any], is_train: bool) -> None:
        """The encoder's seed, and the variant's paper defaults of ``--style_weight`` and
        ``--batch_size``, fixed before ``opt.yaml`` records them."""
        variant = VARIANTS[values["attention"]]
        if values.get("backbone_seed") is None:
            values["backbone_seed"] = stream_seed(values["seed"], "random_backbone")
        if is_train:
            if values.get("style_weight") is None:
                values["style_weight"] = variant.style_weight
            if values.get("batch_size") is None:
                values["batch_size"] = variant.batch_size

    def __init__(self, opt: Options, device: torch.device) -> None:
        super().__init__(opt, device)
        if opt.input_nc != 3 or opt.output_nc != 3:
            raise UserError("--model adain stylises RGB images: --input_nc and --output_nc must be 3")
        self.variant = VARIANTS[opt.attention]
        self.attention = opt.attention == "sanet"
        self.loss_names = self.variant.loss_names
        self.alpha = float(opt.get("alpha", 1.0))  # test.py's; training decodes the fused features
        if not 0 <= self.alpha <= 1:
            raise UserError(f"--alpha must be in [0, 1], got {opt.get('alpha')}")
        self.encoder = self.fast.prepare_net(self.build_backbone().to(device))
        self.nets["decoder"] = self.fast.prepare_net(Decoder().to(device))
        if self.attention:
            self.nets["sanet"] = self.fast.prepare_net(StyleAttention().to(device))
        self._visuals: dict[str, torch.Tensor] = {}
        if not self.is_train:
            return
        parameters = [p for net in self.nets.values() for p in net.parameters()]
        self.optimizers["G"] = adam(parameters, opt.lr, (opt.beta1, 0.999))
        self.setup_schedulers()
        self.iterations = 0  # steps taken: the --lr_decay clock (a resumed run's comes from its checkpoint)

    def build_backbone(self) -> FeatureExtractor:
        """The frozen VGG-19 (``perceptual_backbone``), built on a random stream of its own so the
        decoder's initial weights depend on ``--seed`` only. A random one is drawn from
        ``--backbone_seed`` (the same in test.py and in a resumed run) with He's initialisation:
        torch's default shrinks the features about 4x per block, to near nothing at relu4_1."""
        opt = self.opt
        with torch.random.fork_rng(devices=[]):
            if not opt.random_backbone:
                return perceptual_backbone(BACKBONE, opt.vgg_weights)
            torch.manual_seed(opt.backbone_seed)
            encoder = perceptual_backbone(BACKBONE, random_init=True)
            for module in encoder.modules():  # He's initialisation: features keep their scale with depth
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    nn.init.zeros_(module.bias)
            return encoder

    @property
    def minimum_size(self) -> int:
        """The smallest side the encoder takes: 2x2 positions at the deepest layer."""
        return 2 * self.variant.size_multiple

    # ---- the network: encode, fuse, decode ----------------------------------------------
    def encode(self, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Encoder features of images in [-1, 1] (already padded as they should be)."""
        return self.encoder(to_unit_range(images), layers)

    def fuse(
        self,
        content: dict[str, torch.Tensor],
        styles: Sequence[dict[str, torch.Tensor]],
        weights: Sequence[float],
        alpha: float = 1.0,
    ) -> torch.Tensor:
        """The decoder's input for content features and one or more styles' features (batch 1,
        or the content's): (1 − alpha) · B + alpha · Σ_k w_k T_k (see the module's note). Test
        time's: the plain networks, outside DDP and torch.compile."""
        if self.attention:
            attend = unwrap(self.nets["sanet"])
            c4, c5 = content["relu4_1"], content["relu5_1"]
            fused = sum(w * attend(c4, s["relu4_1"], c5, s["relu5_1"]) for w, s in zip(weights, styles, strict=True))
            base = attend(c4, c4, c5, c5) if alpha < 1 else None  # F_cc: the content as its own style
        else:
            c4 = upcast(content["relu4_1"])  # statistics in fp32 under --amp
            fused = sum(w * adain(c4, upcast(s["relu4_1"])) for w, s in zip(weights, styles, strict=True))
            base = c4
        return fused if alpha == 1 else (1 - alpha) * base + alpha * fused

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Decoder output, images in [0, 1] (not clamped); the plain network, as ``fuse``."""
        return unwrap(self.nets["decoder"])(features)

    def transfer(
        self,
        content: torch.Tensor,
        styles: Sequence[Sequence[torch.Tensor]],
        weights: Sequence[Sequence[float]],
        alpha: float = 1.0,
    ) -> torch.Tensor:
        """Stylise ``content`` (N, 3, H, W) in [-1, 1], image i with the blend of ``styles[i]``
        ((1, 3, h, w) or (3, h, w) tensors in [-1, 1], any size) by ``weights[i]``. Returns (N, 3, H,
        W) in [-1, 1], not clamped. A style tensor shared by several images is encoded once."""
        height, width = content.shape[-2:]
        layers = self.variant.content_layers
        content_features = self.encode(pad_to_multiple(content, self.variant.size_multiple, self.minimum_size), layers)
        encoded: dict[int, dict[str, torch.Tensor]] = {}  # id(style tensor) -> its features
        fused = []
        for i, (image_styles, image_weights) in enumerate(zip(styles, weights, strict=True)):
            for style in image_styles:
                if id(style) not in encoded:
                    style_batch = self.fast.prepare_input(style if style.dim() == 4 else style[None])
                    encoded[id(style)] = self.encode(pad_to_multiple(style_batch, 1, self.minimum_size), layers)
            features = {name: f[i : i + 1] for name, f in content_features.items()}
            fused.append(self.fuse(features, [encoded[id(s)] for s in image_styles], image_weights, alpha))
        return to_signed_range(self.decode(torch.cat(fused)))[..., :height, :width]

    @torch.no_grad()
    def stylize(
        self,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        weights: Sequence[float] | None = None,
        alpha: float = 1.0,
    ) -> torch.Tensor:
        """Every image of ``content`` with the same style, or the blend of several by ``weights``
        (default: equal)."""
        weights = list(weights) if weights is not None else [1 / len(styles)] * len(styles)
        n = content.shape[0]
        with self.fast.autocast():
            return upcast(self.transfer(self.fast.prepare_input(content), [styles] * n, [weights] * n, alpha))

    # ---- training -----------------------------------------------------------------------
    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        fast, variant = self.fast, self.variant
        height, width = batch["A"].shape[-2:]
        multiple = variant.size_multiple
        content = pad_to_multiple(fast.prepare_input(batch["A"]), multiple, self.minimum_size)
        style = pad_to_multiple(fast.prepare_input(batch["B"]), multiple, self.minimum_size)
        self.optimizers["G"].zero_grad(set_to_none=True)
        with fast.autocast():  # --amp: the networks in low precision, the losses below in fp32
            losses, stylized = (self.sanet_losses if self.attention else self.adain_losses)(content, style)
        fast.backward(sum(losses.values()))
        self.step_optimizer()
        fast.update()
        self._visuals = {
            "content": batch["A"].to(self.device),
            "style": batch["B"].to(self.device),
            "stylized": to_signed_range(stylized.detach())[..., :height, :width],
        }
        return {name: losses[name].detach() for name in self.loss_names}

    def adain_losses(self, content: torch.Tensor, style: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """AdaIN's weighted losses and its images g(t), in [0, 1]."""
        opt, layers = self.opt, self.variant.style_layers
        with torch.no_grad():  # the frozen encoder's view of the inputs: targets
            target = self.encode(content, ["relu4_1"])["relu4_1"]
            style_features = {n: upcast(f) for n, f in self.encode(style, layers).items()}
            t = adain(upcast(target), style_features["relu4_1"])
        stylized = self.nets["decoder"](t)
        features = {n: upcast(f) for n, f in self.encoder(stylized, layers).items()}
        losses = {
            "content": opt.content_weight * F.mse_loss(features["relu4_1"], t),
            "style": opt.style_weight * mean_std_loss(features, style_features),
        }
        return losses, upcast(stylized)

    def sanet_losses(self, content: torch.Tensor, style: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """SANet's weighted losses and its images g(F_cs), in [0, 1]. The three fusions (content
        with style, content with content, style with style) run as one batch through the SANet,
        the decoder and the encoder: one forward per network and step, as DDP expects."""
        if content.shape != style.shape:
            raise UserError(
                f"--attention sanet trains on content and style crops of one size, got {tuple(content.shape[-2:])} "
                f"and {tuple(style.shape[-2:])}: use a cropping --preprocess"
            )
        opt, layers = self.opt, self.variant.style_layers
        with torch.no_grad():
            c = self.encode(content, layers)
            s = self.encode(style, layers)
        c4, c5, s4, s5 = c["relu4_1"], c["relu5_1"], s["relu4_1"], s["relu5_1"]
        fused = self.nets["sanet"](
            torch.cat([c4, c4, s4]), torch.cat([s4, c4, s4]), torch.cat([c5, c5, s5]), torch.cat([s5, c5, s5])
        )
        images = self.nets["decoder"](fused)
        n = content.shape[0]
        stylized, image_cc, image_ss = upcast(images).split(n)
        # the encoder's view of the three: (I_cs, I_cc, I_ss) per layer
        out = {name: upcast(f).split(n) for name, f in self.encoder(images, layers).items()}
        cs = {name: f[0] for name, f in out.items()}
        c = {name: upcast(f) for name, f in c.items()}
        s = {name: upcast(f) for name, f in s.items()}
        content_loss = sum(
            F.mse_loss(normalize_channels(cs[name]), normalize_channels(c[name]))
            for name in self.variant.content_layers
        )
        identity1 = F.mse_loss(image_cc, to_unit_range(content)) + F.mse_loss(image_ss, to_unit_range(style))
        identity2 = sum(F.mse_loss(out[name][1], c[name]) + F.mse_loss(out[name][2], s[name]) for name in layers)
        losses = {
            "content": opt.content_weight * content_loss,
            "style": opt.style_weight * mean_std_loss(cs, s),
            "identity1": opt.lambda_identity1 * identity1,
            "identity2": opt.lambda_identity2 * identity2,
        }
        return losses, stylized

    def step_optimizer(self) -> None:
        """One Adam step at the decayed rate lr_t = lr / (1 + lr_decay · t) (t: steps before this
        one; lr: the --lr_policy schedule's, which the optimizer keeps between steps)."""
        optimizer = self.optimizers["G"]
        scheduled = [group["lr"] for group in optimizer.param_groups]
        for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
            group["lr"] = lr / (1 + self.opt.lr_decay * self.iterations)
        self.fast.step(optimizer)
        for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
            group["lr"] = lr
        self.iterations += 1

    def current_lr(self) -> float:
        """The rate of the next step (the schedule's, decayed)."""
        return super().current_lr() / (1 + self.opt.lr_decay * self.iterations)

    def load_state_dict(self, state: dict, source: str) -> None:
        super().load_state_dict(state, source)
        self.iterations = int(state.get("total_iters", 0))  # one step per iteration

    def visuals(self) -> dict[str, torch.Tensor]:
        return dict(self._visuals)

    # ---- test time ----------------------------------------------------------------------
    @torch.inference_mode()
    def inference(
        self, side: str, images: torch.Tensor, items: Sequence[dict] | None = None
    ) -> dict[str, torch.Tensor]:
        """Each image stylised with its item's ``style`` images blended by its ``style_weights``
        (``--dataset_mode content_style`` items), at ``--alpha``."""
        if items is None or any("style" not in item for item in items):
            raise UserError(
                "--model adain stylises items that carry their style images: use --dataset_mode content_style"
            )
        content = self.fast.prepare_input(images)
        with self.fast.autocast():
            stylized = self.transfer(
                content, [item["style"] for item in items], [item["style_weights"] for item in items], self.alpha
            )
        return {"content": content, "stylized": upcast(stylized).clamp(-1, 1)}

    def translation_label(self, side: str) -> str:
        return "stylized"
