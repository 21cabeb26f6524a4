"""Image replay buffer (Shrivastava et al.): D sees a history of fakes, not only the latest.

Its contents and its random generator are part of the checkpoint, so a resumed run draws
exactly what an uninterrupted run would have drawn.
"""

from __future__ import annotations

import torch


class ImagePool:
    """Holds up to ``size`` past fakes. ``query`` returns, for each incoming image: the image
    itself while the pool fills; afterwards, with probability 0.5 a stored image (which the
    new one replaces), otherwise the new image. ``size`` 0 disables the pool."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(1, generator=self.generator).item() > 0.5:
                idx = int(torch.randint(0, self.size, (1,), generator=self.generator).item())
                out.append(self.images[idx].clone())
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [img.cpu() for img in self.images], "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.size = state["size"]
        self.images = [img.to(device) for img in state["images"]]
        self.generator.set_state(state["rng"])
