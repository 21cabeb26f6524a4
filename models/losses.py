"""GAN objectives and the WGAN-GP gradient penalty."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.fast_path import upcast

GAN_MODES = ("lsgan", "vanilla", "wgangp")


class GANLoss(nn.Module):
    """The adversarial loss for one discriminator output, real or fake target.

    lsgan: mean squared error to 1 (real) / 0 (fake) (Mao et al.), the CycleGAN default;
    vanilla: binary cross-entropy on logits (Goodfellow et al.);
    wgangp: -mean(D) for real, +mean(D) for fake (Gulrajani et al.); the discriminator loss
    then also needs ``gradient_penalty``.
    """

    def __init__(self, mode: str = "lsgan", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode '{mode}' (choose from {', '.join(GAN_MODES)})")
        self.mode = mode
        self.real_label = real_label
        self.fake_label = fake_label

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        prediction = upcast(prediction)  # under --amp: the loss in fp32, whatever D computed in
        if self.mode == "wgangp":
            return -prediction.mean() if target_is_real else prediction.mean()
        target = torch.full_like(prediction, self.real_label if target_is_real else self.fake_label)
        if self.mode == "lsgan":
            return F.mse_loss(prediction, target)
        return F.binary_cross_entropy_with_logits(prediction, target)


def discriminator_objective(
    criterion: GANLoss, pred_real: torch.Tensor, pred_fake: torch.Tensor, penalty: torch.Tensor | None = None
) -> torch.Tensor:
    """A discriminator's loss from its predictions: 0.5 * (L(D(real), 1) + L(D(fake), 0)); for
    wgangp E[D(fake)] - E[D(real)] + ``penalty`` (``gradient_penalty``, computed by the caller)."""
    loss_real, loss_fake = criterion(pred_real, True), criterion(pred_fake, False)
    if criterion.mode == "wgangp":
        return loss_real + loss_fake + upcast(penalty)
    return 0.5 * (loss_real + loss_fake)


def gradient_penalty(
    netD: nn.Module, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0, target_norm: float = 1.0
) -> torch.Tensor:
    """WGAN-GP: weight * E[(||grad_x D(x)||_2 - 1)^2] at random interpolates of real and fake.

    ``fake`` must be detached. One interpolation coefficient per sample.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = netD(interpolates)
    (grad,) = torch.autograd.grad(out.sum(), interpolates, create_graph=True)
    grad_norm = grad.flatten(1).norm(2, dim=1)
    return weight * ((grad_norm - target_norm) ** 2).mean()
