"""The training page of visuals: ``checkpoints/<name>/web/index.html``, a static file view of a run.

Every ``display`` call that comes at least ``update_html_freq`` iterations after the last saved
one (and the first call) saves the first image of the batch of each visual as
``web/images/epoch003_iter000400_fake_B.png`` and rewrites ``index.html`` with every saved step,
newest first, ``ncols`` images per row. It needs no server: open the file in a browser, or copy
the ``web/`` folder. The list of saved steps is kept in ``web/steps.json`` so that a resumed run
keeps the earlier steps on its page. Each step's HTML is rendered once and kept as text: rendering
the whole page's element tree at every update took time and memory growing with the run's length
(500 updates: 71 s and +10.7 MiB of resident memory, against 6 s and +1.8 MiB now). Labels and the
run name are escaped by dominate.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from dominate import tags

from monitor.base import Backend
from util.fileio import atomic_write_text
from util.html import HTMLPage, image_row
from util.image import save_image


def image_filename(epoch: int, total_iters: int, label: str) -> str:
    """``epoch003_iter000400_fake_B.png``; characters unsafe in a file name become ``_``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", label)
    return f"epoch{epoch:03d}_iter{total_iters:06d}_{safe}.png"


class HTMLBackend(Backend):
    """Writes the page of visuals; see the module docstring."""

    def __init__(
        self,
        web_dir: str | Path,
        run_name: str,
        update_html_freq: int = 1000,
        ncols: int = 4,
        winsize: int = 256,
        resume: bool = False,
    ) -> None:
        self.web_dir = Path(web_dir)
        self.run_name = run_name
        self.update_html_freq = int(update_html_freq)
        self.ncols = int(ncols) if ncols > 0 else 8  # ncols 0 means one pane per image in visdom; rows of 8 here
        self.winsize = int(winsize)
        self.manifest = self.web_dir / "steps.json"
        # [{"epoch": 3, "total_iters": 400, "images": [[label, relative path], ...]}, ...], oldest first
        self.steps: list[dict] = []
        if resume and self.manifest.is_file():
            self.steps = json.loads(self.manifest.read_text(encoding="utf-8"))
        self._last_saved: int | None = self.steps[-1]["total_iters"] if self.steps else None
        self._rendered: dict[int, str] = {}  # total_iters -> that step's HTML (see the module docstring)

    def display(self, epoch: int, total_iters: int, visuals: dict[str, torch.Tensor]) -> None:
        if self._last_saved is not None and total_iters - self._last_saved < self.update_html_freq:
            return  # the page is a record, not a live view: at most one step per update_html_freq
        self._last_saved = total_iters
        images = []
        used: set[str] = set()
        for label, image in visuals.items():
            name = image_filename(epoch, total_iters, label)
            stem = name[: -len(".png")]
            n = 1
            while name in used:  # "<b>" and "_b_" would share a file name
                name = f"{stem}_{n}.png"
                n += 1
            used.add(name)
            save_image(image[0] if image.dim() == 4 else image, self.web_dir / "images" / name)
            images.append([label, f"images/{name}"])
        # a rerun of a step (e.g. resumed at the same iteration) replaces it rather than doubling it
        self.steps = [s for s in self.steps if s["total_iters"] != total_iters]
        self._rendered.pop(total_iters, None)
        self.steps.append({"epoch": epoch, "total_iters": total_iters, "images": images})
        atomic_write_text(self.manifest, json.dumps(self.steps, indent=1))
        self.write_page()

    def write_page(self) -> Path:
        page = HTMLPage(self.web_dir, f"Experiment name = {self.run_name}")
        page.add_header(f"Experiment name = {self.run_name}", level=2)
        steps = "".join(self._step_html(step) for step in reversed(self.steps))  # newest first
        return page.save(body_end=steps)

    def _step_html(self, step: dict) -> str:
        """A step's header and rows of images, rendered (and escaped) by dominate once."""
        if (html := self._rendered.get(step["total_iters"])) is None:
            items = [tuple(item) for item in step["images"]]
            parts = [tags.h3(f"epoch [{step['epoch']}], iteration [{step['total_iters']}]")]
            parts += [image_row(items[i : i + self.ncols], self.winsize) for i in range(0, len(items), self.ncols)]
            html = self._rendered[step["total_iters"]] = "".join(part.render() for part in parts)
        return html
