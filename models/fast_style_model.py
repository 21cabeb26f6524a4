"""Real-time style transfer (Johnson, Alahi & Fei-Fei, ECCV 2016): one feed-forward network "G"
(``--netG transformer_net``) learns one style from content photos, trained with perceptual
losses measured by a frozen VGG-16; at test time it stylises an image of any size in one pass.

    python train.py --model fast_style --dataroot ./coco_images --style_image starry.jpg --name starry \\
        --vgg_weights vgg16-397923af.pth          # or torchvision's file in its cache
    python test.py --name starry --dataroot photo.jpg   # or a folder; results/<name>/test_latest/

Loss of a batch of content images x (in [0, 1] for VGG: the network's [-1, 1] mapped), output
y = G(x) and style image s (one, ``--style_image``, at ``--style_size``)::

    L_G = content_weight * MSE(relu2_2(y), relu2_2(x))                                  (content)
        + style_weight * sum_{l in relu1_2, relu2_2, relu3_3, relu4_3} MSE(Gram_l(y), Gram_l(s))  (style)
        + tv_weight * TV(y)                                                              (tv)
        + lambda_gan * L_GAN(D(y), real)                                                 (G_GAN, optional)

with Grams normalised by C·H·W and TV the mean absolute neighbour difference
(``models.style_losses``). The defaults are those of PyTorch's fast_neural_style example,
which uses these normalisations: content 1e5, style 1e10, Adam lr 1e-3 (betas 0.9, 0.999), batch 4,
256x256 images, 2 epochs at a constant rate (Johnson et al.: 40k iterations over COCO's 80k). TV
is off by default (the example has none; the paper tunes it per style between 1e-6 and 1e-4 for
its own, unnormalised, TV on [0, 255] images, not comparable with this one).

``--lambda_gan`` > 0 adds a ``--netD`` PatchGAN "D" that judges the style domain: random
``--crop_size`` crops of the style image are real, the stylised images fake (``--gan_mode``;
this step's outputs, no image pool), trained with its own Adam. The VGG is a measuring
instrument: it is not in ``nets`` (so not in checkpoints, not wrapped by DDP), it is frozen, and
its weights come from ``--vgg_weights``, torchvision's cache (SHA-256 checked) or, for tests and
smoke runs, ``--random_backbone`` (seeded from ``--seed``: the same in a resumed run).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import torch

from models.base_model import MODELS, BaseModel, unwrap
from models.fast_path import adam, upcast
from models.losses import GANLoss, discriminator_objective, gradient_penalty
from models.networks.perceptual import FeatureExtractor, perceptual_backbone
from models.style_losses import content_loss, gram_matrix, style_loss, total_variation
from util.seeds import stream_seed

if TYPE_CHECKING:
    from collections.abc import Sequence

    from options import Options

BACKBONE = "vgg16"
CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
PERCEPTUAL_LOSSES = ("content", "style", "tv")
GAN_LOSSES = ("G_GAN", "D")


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (datasets, the network's tanh) -> [0, 1] (what the VGG takes)."""
    return (images + 1) / 2


@MODELS.register("fast_style")
class FastStyleModel(BaseModel):
    """See the module's note. ``loss_names`` gains ``G_GAN`` and ``D`` with ``--lambda_gan`` > 0."""

    loss_names = PERCEPTUAL_LOSSES
    test_sides = ("A",)
    monitor_losses = PERCEPTUAL_LOSSES  # the plateau policy watches the perceptual loss
    generators = ("G",)

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        parser.set_defaults(
            dataset_mode="style", netG="transformer_net", ngf=32, no_dropout=True, load_size=256, crop_size=256
        )
        if is_train:
            parser.set_defaults(lr=1e-3, beta1=0.9, batch_size=4, n_epochs=2, n_epochs_decay=0)
            group = parser.add_argument_group("fast_style")
            add = group.add_argument
            add("--content_weight", type=float, default=1e5, help="weight of the relu2_2 feature loss")
            add("--style_weight", type=float, default=1e10, help="weight of the Gram loss (Grams normalised by C*H*W)")
            add("--tv_weight", type=float, default=0.0, help="weight of the total variation of the output (smoothness)")
            add(
                "--lambda_gan",
                type=float,
                default=0.0,
                help="weight of an adversarial loss from a --netD PatchGAN judging style crops (0: no D)",
            )
            add(
                "--vgg_weights",
                type=str,
                default=None,
                help=f"{BACKBONE}'s ImageNet weights (default: torchvision's file in the torch hub cache)",
            )
            add("--random_backbone", action="store_true", help="a random VGG: a smoke test, not a stylisation")
        return parser

    def __init__(self, opt: Options, device: torch.device) -> None:
        super().__init__(opt, device)
        self.nets["G"] = self.build_generator(opt.input_nc, opt.output_nc)
        self._visuals: dict[str, torch.Tensor] = {}
        if not self.is_train:
            return
        self.vgg = self.fast.prepare_net(self.build_backbone().to(device))
        self._style_grams: dict[str, torch.Tensor] | None = None  # from the first batch's style image
        self.gan = opt.lambda_gan > 0
        self.loss_names = PERCEPTUAL_LOSSES + (GAN_LOSSES if self.gan else ())
        betas = (opt.beta1, 0.999)
        self.optimizers["G"] = adam(self.nets["G"].parameters(), opt.lr, betas)
        if self.gan:
            self.nets["D"] = self.build_discriminator(opt.output_nc)
            self.criterion_gan = GANLoss(opt.gan_mode)
            self.optimizers["D"] = adam(self.nets["D"].parameters(), opt.lr, betas)
        self.setup_schedulers()

    def build_backbone(self) -> FeatureExtractor:
        """The frozen VGG-16 (``perceptual_backbone``, as stylize.py's). A random one is drawn from
        a stream of its own, so it is the same in a resumed run and leaves the global stream alone."""
        opt = self.opt
        if not opt.random_backbone:
            return perceptual_backbone(BACKBONE, opt.vgg_weights)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(opt.seed, "random_backbone"))
            return perceptual_backbone(BACKBONE, random_init=True)

    # ---- training -----------------------------------------------------------------------
    def style_grams(self, style: torch.Tensor) -> dict[str, torch.Tensor]:
        """The style image's Gram matrices, computed once (every batch carries the same image)."""
        if self._style_grams is None:
            with torch.no_grad():
                features = self.vgg(to_unit_range(style), STYLE_LAYERS)
            self._style_grams = {name: gram_matrix(f) for name, f in features.items()}
        return self._style_grams

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        opt = self.opt
        fast = self.fast
        content = fast.prepare_input(batch["A"])
        style = fast.prepare_input(batch["style"][:1])
        grams = self.style_grams(style)
        G = self.nets["G"]

        if self.gan:
            self.set_requires_grad([self.nets["D"]], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        with fast.autocast():  # --amp: the networks in low precision, the losses below in fp32
            stylized = G(content)
            with torch.no_grad():
                target = self.vgg(to_unit_range(content), [CONTENT_LAYER])[CONTENT_LAYER]
            layers = list(dict.fromkeys([CONTENT_LAYER, *STYLE_LAYERS]))
            features = self.vgg(to_unit_range(stylized), layers)
            pred = self.nets["D"](stylized) if self.gan else None
        features = {name: upcast(f) for name, f in features.items()}
        stylized = upcast(stylized)
        losses = {
            "content": opt.content_weight * content_loss(features[CONTENT_LAYER], upcast(target)),
            "style": opt.style_weight * style_loss(features, grams),
            "tv": opt.tv_weight * total_variation(to_unit_range(stylized)),
        }
        if self.gan:
            losses["G_GAN"] = opt.lambda_gan * self.criterion_gan(pred, True)
        fast.backward(sum(losses.values()))
        fast.step(self.optimizers["G"])
        if self.gan:
            self.set_requires_grad([self.nets["D"]], True)
            losses["D"] = self.backward_D(fast.prepare_input(batch["B"]), stylized.detach())
        fast.update()

        self._visuals = {"content": content, "stylized": stylized.detach(), "style": style}
        return {name: losses[name].detach() for name in self.loss_names}

    def backward_D(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """One discriminator step: style crops real, this step's stylised images fake."""
        netD = self.nets["D"]
        self.optimizers["D"].zero_grad(set_to_none=True)
        with self.fast.autocast():
            pred_real, pred_fake = netD(real), netD(fake)
            penalty = gradient_penalty(netD, real, fake) if self.opt.gan_mode == "wgangp" else None
        loss = discriminator_objective(self.criterion_gan, pred_real, pred_fake, penalty)
        self.fast.backward(loss)
        self.fast.step(self.optimizers["D"])
        return loss

    def visuals(self) -> dict[str, torch.Tensor]:
        return dict(self._visuals)

    # ---- test time ----------------------------------------------------------------------
    @torch.inference_mode()
    def inference(
        self, side: str, images: torch.Tensor, items: Sequence[dict] | None = None
    ) -> dict[str, torch.Tensor]:
        real = self.fast.prepare_input(images)
        with self.fast.autocast():
            fake = unwrap(self.nets["G"])(real)
        return {"real_A": real, "fake_B": upcast(fake)}

    def translation_label(self, side: str) -> str:
        return "fake_B"
