"""CUT and FastCUT (Park, Efros, Zhang, Zhu, ECCV 2020): unpaired one-sided translation with
patchwise contrastive learning."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from models.base_model import MODELS, BaseModel, unwrap
from models.fast_path import adam, upcast
from models.losses import GANLoss, gradient_penalty
from models.networks import define_D, init_weights
from models.networks.contrastive import AntialiasResnetGenerator, PatchSampleMLP, patch_nce_loss
from util.errors import UserError
from util.flags import ARCHITECTURE, FIXED, add

if TYPE_CHECKING:
    from collections.abc import Sequence

    from options import Options

# What --cut_mode sets; an explicit flag (or YAML value) wins. The paper's code: CUT = identity
# NCE on, lambda_NCE 1, 200 + 200 epochs; FastCUT = no identity NCE, lambda_NCE 10, flip
# equivariance, 150 + 50 epochs.
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "cut": {"nce_idt": True, "lambda_NCE": 1.0, "flip_equivariance": False, "n_epochs": 200, "n_epochs_decay": 200},
    "fastcut": {"nce_idt": False, "lambda_NCE": 10.0, "flip_equivariance": True, "n_epochs": 150, "n_epochs_decay": 50},
}
RESNET_BLOCKS = {"resnet_9blocks": 9, "resnet_6blocks": 6, "resnet_9blocks_aa": 9, "resnet_6blocks_aa": 6}


def as_bool(value: str | bool) -> bool:
    """The paper's boolean flags take a value (``--nce_idt False``); a bare flag means True."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def layer_list(value: str | list | tuple) -> str:
    """``--nce_layers 0,4,8,12,16``: distinct non-negative module indices, kept as the string."""
    parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
    try:
        layers = [int(str(p).strip()) for p in parts if str(p).strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer indices, got {value!r}") from None
    if not layers or any(i < 0 for i in layers) or len(set(layers)) != len(layers):
        raise argparse.ArgumentTypeError(f"expected distinct non-negative layer indices, got {value!r}")
    return ",".join(str(i) for i in sorted(layers))


@MODELS.register("cut")
class CUTModel(BaseModel):
    r"""CUT / FastCUT with the paper's losses and update order.

    One generator G: X -> Y (its encoder is G's first modules), a PatchGAN D judging Y images (both
    with blur-pool resampling unless ``--no_antialias`` / ``--no_antialias_up``, as the paper's code),
    and the head H (``F`` here, the paper's netF): one MLP per chosen encoder layer. Each step::

        x_hat = G(x)   and, for CUT, y_idt = G(y)        (one batch: G(cat(x, y)))
        L_D = 0.5 * (L_GAN(D(y), 1) + L_GAN(D(G(x).detach()), 0))           (D_real, D_fake)
        L_G = lambda_GAN * L_GAN(D(G(x)), 1) + NCE_both                      (G_GAN, NCE, NCE_Y)

    D steps first; G and H step together on L_G, judged by the updated D. PatchNCE(src, tgt):
    the encoder features of G(src_image) and G(tgt) at ``--num_patches`` positions sampled per
    layer (the same positions for both), each embedded by H and L2-normalised; per layer the
    mean of ``patch_nce_loss`` (temperature ``--nce_T``) times lambda_NCE, averaged over layers.
    NCE = PatchNCE(x, G(x)); NCE_Y = PatchNCE(y, G(y)); NCE_both = (NCE + NCE_Y) / 2 with
    ``--nce_idt``, else NCE. ``--flip_equivariance``: with probability 1/2 the step's input is
    flipped left-right before G and the output's features are flipped back before matching.
    LSGAN, no image pool, Adam(lr, (beta1, 0.999)) for G, D and H.
    """

    loss_names = ("G_GAN", "D_real", "D_fake", "G", "NCE", "NCE_Y")
    test_sides = ("A",)
    monitor_losses = ("NCE",)
    generators = ("G",)

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        parser.set_defaults(no_dropout=True, init_type="xavier")  # the paper's code's defaults
        group = parser.add_argument_group("cut")
        add(group, "--no_antialias", scope=(ARCHITECTURE, FIXED), action="store_true",
            help="plain stride-2 convs for downsampling in G and D (default: conv then blur-pool)")  # fmt: skip
        add(group, "--no_antialias_up", scope=(ARCHITECTURE, FIXED), action="store_true",
            help="plain transposed convs for upsampling (default: blur-upsample then conv)")  # fmt: skip
        if not is_train:
            return parser
        parser.set_defaults(pool_size=0, gan_mode="lsgan", n_epochs=None, n_epochs_decay=None)
        add(group, "--cut_mode", scope=(FIXED,), type=str, default="cut", choices=list(MODE_DEFAULTS),
            help="cut: identity NCE, lambda_NCE 1, 200+200 epochs; fastcut: no identity NCE, lambda_NCE 10, "
            "flip equivariance, 150+50 epochs (explicit flags win)")  # fmt: skip
        add(group, "--lambda_GAN", type=float, default=1.0, help="weight of the GAN loss")
        add(
            group, "--lambda_NCE", type=float, default=None, help="weight of the PatchNCE loss (default: by --cut_mode)"
        )
        add(group, "--nce_idt", type=as_bool, nargs="?", const=True, default=None,
            help="identity PatchNCE on real B, NCE(y, G(y)) (default: by --cut_mode)")  # fmt: skip
        add(group, "--nce_layers", scope=(FIXED,), type=layer_list, default="0,4,8,12,16",
            help="indices of G's modules whose outputs PatchNCE compares")  # fmt: skip
        add(group, "--nce_includes_all_negatives_from_minibatch", action="store_true",
            help="negatives from every image of the batch, not only the query's own image")  # fmt: skip
        add(group, "--netF", scope=(FIXED,), type=str, default="mlp_sample", choices=["mlp_sample"],
            help="the head on the sampled patch features: a Linear-ReLU-Linear MLP per layer")  # fmt: skip
        add(group, "--netF_nc", scope=(FIXED,), type=int, default=256, help="width of the head's MLPs")
        add(group, "--nce_T", type=float, default=0.07, help="temperature of PatchNCE")
        add(group, "--num_patches", type=int, default=256, help="patches sampled per layer")
        add(group, "--flip_equivariance", type=as_bool, nargs="?", const=True, default=None,
            help="flip the step's input left-right half of the time, matching features flipped back "
            "(default: by --cut_mode)")  # fmt: skip
        return parser

    @classmethod
    def resolve_options(cls, values: dict[str, Any], is_train: bool) -> None:
        if not is_train:
            return
        for key, value in MODE_DEFAULTS[values["cut_mode"]].items():
            if values.get(key) is None:
                values[key] = value

    def __init__(self, opt: Options, device: torch.device) -> None:
        super().__init__(opt, device)
        if opt.netG not in RESNET_BLOCKS:
            raise UserError(
                f"--model cut needs a ResNet generator (--netG {' | '.join(RESNET_BLOCKS)}), got --netG {opt.netG}: "
                "--nce_layers index its modules"
            )
        self.nets["G"] = self.build_cut_generator()
        self._visuals: dict[str, torch.Tensor] = {}
        if not self.is_train:
            return
        if opt.nce_idt and opt.input_nc != opt.output_nc:
            raise UserError("identity PatchNCE (--nce_idt) needs --input_nc == --output_nc; use --nce_idt False")
        if opt.num_patches < 1:
            raise UserError(f"--num_patches must be at least 1, got {opt.num_patches}")
        self.nce_layers = [int(i) for i in opt.nce_layers.split(",")]
        G = self.nets["G"]
        if self.nce_layers[-1] >= len(G.model):
            raise UserError(f"--nce_layers {opt.nce_layers}: the generator has modules 0..{len(G.model) - 1}")
        self.nets["D"] = self.build_cut_discriminator()
        self.nets["F"] = self.build_head()
        self.criterion_gan = GANLoss(opt.gan_mode)
        betas = (opt.beta1, 0.999)
        self.optimizers["G"] = adam(self.nets["G"].parameters(), opt.lr, betas)
        self.optimizers["D"] = adam(self.nets["D"].parameters(), opt.lr, betas)
        self.optimizers["F"] = adam(self.nets["F"].parameters(), opt.lr, betas)
        self.setup_schedulers()
        if opt.pool_size > 0 and "pool_size" in opt.explicit and not (dist.is_initialized() and dist.get_rank() > 0):
            print(f"note: CUT's D judges each step's own fakes (no image pool): --pool_size {opt.pool_size} is unused")

    def build_cut_generator(self) -> torch.nn.Module:
        """The paper's generator: anti-aliased unless --no_antialias / --no_antialias_up (a ``*_aa``
        --netG is anti-aliased in both directions regardless). ``--upsample resize_conv`` replaces
        the plain transposed convs of ``--no_antialias_up``; the blur-upsampling is already a
        resize then a conv, so the two do not combine (a one-line error)."""
        opt = self.opt
        aa = opt.netG.endswith("_aa")
        antialias_up = aa or not opt.no_antialias_up
        if opt.upsample != "transpose" and antialias_up:
            raise UserError(
                f"--upsample {opt.upsample}: CUT's generator upsamples by a blur then a 3x3 conv already (no "
                "transposed conv); add --no_antialias_up (and a --netG without _aa) for nearest resize + conv instead"
            )
        net = AntialiasResnetGenerator(
            opt.input_nc,
            opt.output_nc,
            opt.ngf,
            opt.norm,
            not opt.no_dropout,
            n_blocks=RESNET_BLOCKS[opt.netG],
            antialias=aa or not opt.no_antialias,
            antialias_up=antialias_up,
            upsample=opt.upsample,
        )
        net = init_weights(net, opt.init_type, opt.init_gain)
        return self.fast.prepare_net(net.to(self.device))

    def build_cut_discriminator(self) -> torch.nn.Module:
        """The paper's D: the PatchGAN with blur-pool downsampling (``basic_aa`` / ``n_layers_aa``)
        unless --no_antialias; other --netD values as they are."""
        opt = self.opt
        name = opt.netD
        if not opt.no_antialias and name in ("basic", "n_layers"):
            name = f"{name}_aa"
        net = define_D(
            name,
            opt.output_nc,
            opt.ndf,
            opt.n_layers_D,
            opt.norm,
            opt.init_type,
            opt.init_gain,
            spectral_norm=opt.spectral_norm,
        )
        return self.fast.prepare_net(net.to(self.device))

    def build_head(self) -> torch.nn.Module:
        """H, sized from the chosen layers' channel counts (one small forward of the encoder; it
        draws no random numbers)."""
        with torch.no_grad():
            probe = torch.zeros(1, self.opt.input_nc, 16, 16, device=self.device)
            channels = [f.shape[1] for f in self.nets["G"].encode(probe, self.nce_layers)]
        head = init_weights(PatchSampleMLP(channels, self.opt.netF_nc), self.opt.init_type, self.opt.init_gain)
        return head.to(self.device)

    # ---- training -----------------------------------------------------------------------
    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        fast, opt = self.fast, self.opt
        real_A = fast.prepare_input(batch["A"])
        real_B = fast.prepare_input(batch["B"])
        real = torch.cat([real_A, real_B]) if opt.nce_idt else real_A
        # drawn from the global stream (saved in checkpoints), once per step as the paper
        self.flipped = bool(opt.flip_equivariance and torch.rand(()) < 0.5)
        if self.flipped:
            real = torch.flip(real, [3])
        with fast.autocast():
            fake = self.nets["G"](real)
        n = real_A.shape[0]
        fake_B = fake[:n]
        idt_B = fake[n:] if opt.nce_idt else None

        losses = self.step_D(real_B, fake_B)
        losses.update(self.step_G(real_A, real_B, fake_B, idt_B))
        fast.update()
        visuals = {"real_A": real_A, "fake_B": fake_B, "real_B": real_B}
        if idt_B is not None:
            visuals["idt_B"] = idt_B
        self._visuals = {k: upcast(v.detach()) for k, v in visuals.items()}
        return {name: losses[name].detach() for name in self.loss_names}

    def step_D(self, real_B: torch.Tensor, fake_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """D first, on real B and this step's fakes (detached: no gradient reaches G)."""
        D = self.nets["D"]
        self.set_requires_grad([D], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        fake_B = fake_B.detach()
        with self.fast.autocast():
            pred_fake = D(fake_B)
            pred_real = D(real_B)
            loss_fake = self.criterion_gan(pred_fake, False)
            loss_real = self.criterion_gan(pred_real, True)
            if self.opt.gan_mode == "wgangp":  # E[D(fake)] - E[D(real)] + the penalty (see models.losses)
                loss_D = loss_fake + loss_real + upcast(gradient_penalty(D, real_B, fake_B))
            else:
                loss_D = 0.5 * (loss_fake + loss_real)
        self.fast.backward(loss_D)
        self.fast.step(self.optimizers["D"])
        return {"D_fake": loss_fake, "D_real": loss_real}

    def step_G(self, real_A, real_B, fake_B, idt_B) -> dict[str, torch.Tensor]:
        """G and H together, with D frozen (no gradient reaches it), judged by the D just updated."""
        opt, D = self.opt, self.nets["D"]
        self.set_requires_grad([D], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        self.optimizers["F"].zero_grad(set_to_none=True)
        zero = torch.zeros((), device=self.device)
        with self.fast.autocast():
            loss_gan = self.criterion_gan(D(fake_B), True) * opt.lambda_GAN if opt.lambda_GAN > 0 else zero
        loss_nce = self.nce_loss(real_A, fake_B) if opt.lambda_NCE > 0 else zero
        if opt.nce_idt and opt.lambda_NCE > 0:
            loss_nce_y = self.nce_loss(real_B, idt_B)
            nce_both = (loss_nce + loss_nce_y) * 0.5
        else:
            loss_nce_y, nce_both = zero, loss_nce
        loss_G = loss_gan + nce_both
        self.fast.backward(loss_G)
        self.fast.step(self.optimizers["G"])
        self.fast.step(self.optimizers["F"])
        return {"G_GAN": loss_gan, "NCE": loss_nce, "NCE_Y": loss_nce_y, "G": loss_G}

    def nce_loss(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """PatchNCE between an input ``src`` (unflipped) and G's output ``tgt`` (flipped with the
        step's input when it was): mean over layers of lambda_NCE * mean over patches."""
        opt = self.opt
        G, H = self.nets["G"], self.nets["F"]
        encoder = unwrap(G)
        with self.fast.autocast():
            feat_q = encoder.encode(tgt, self.nce_layers)
            if self.flipped:
                feat_q = [torch.flip(f, [3]) for f in feat_q]
            feat_k = encoder.encode(src, self.nce_layers)
            pool_k, ids = H(feat_k, opt.num_patches)
            pool_q, _ = H(feat_q, opt.num_patches, ids)
        total = torch.zeros((), device=self.device)
        for q, k in zip(pool_q, pool_k, strict=True):
            loss = patch_nce_loss(
                upcast(q), upcast(k), src.shape[0], opt.nce_T, opt.nce_includes_all_negatives_from_minibatch
            )
            total = total + (loss * opt.lambda_NCE).mean()
        return total / len(self.nce_layers)

    def visuals(self) -> dict[str, torch.Tensor]:
        return dict(self._visuals)

    # ---- test time ----------------------------------------------------------------------
    @torch.inference_mode()
    def inference(
        self, side: str, images: torch.Tensor, items: Sequence[dict] | None = None
    ) -> dict[str, torch.Tensor]:
        """real_A and fake_B = G(real_A): CUT translates one way only."""
        real_A = self.fast.prepare_input(images)
        with self.fast.autocast():
            fake_B = self.generate(unwrap(self.nets["G"]), real_A)  # any size; --tile
        return {"real_A": real_A, "fake_B": upcast(fake_B)}

    def translation_label(self, side: str) -> str:
        return "fake_B"
