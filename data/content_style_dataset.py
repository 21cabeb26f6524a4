"""Content and style images for arbitrary style transfer (``--dataset_mode content_style``, the
``adain`` model's): one network learns every style, so training pairs content crops with crops
of many style images.

Training: ``<dataroot>/<phase>A/`` holds the content images (AdaIN and SANet trained on
MS-COCO's photos), ``<phase>B/`` the style images (WikiArt's paintings): the CycleGAN folder
layout, so one dataset folder serves (``--direction BtoA`` swaps the roles). An epoch has one
item per content image; item i is::

    {"A": a content crop, "A_paths": its file,
     "B": a crop of a style image drawn at random, "B_paths": its file}

with the style and both crops drawn from the stream of (seed, epoch, i)
(``data.transforms.sample_rng``: the same whatever the number of workers or where a resumed run
starts); ``--serial_batches`` pairs content i with style i mod |B|. Both images go through
``--preprocess`` (the model sets the papers': 512x512, then a random 256x256 crop, no flips).

Test (``for_test``): the content images are ``<dataroot>/<phase>A/`` (``testA/``), or
``--dataroot`` itself when it is one image file or a folder without ``<phase>A/``. The styles are
test.py's ``--style_image PATH [PATH ...]``, or else ``<dataroot>/<phase>B/``, each resized
(bicubic) so that its shorter side is ``--style_size`` pixels (512 as both papers' test code; 0
keeps its size). Every content image is stylised with every style, in content-major order, or,
with ``--style_weights w1 .. wK`` (one non-negative weight per style, normalised to sum 1), with
the one blend of all of them. Content images keep their size (the model pads them to its size
multiple and crops its output back); ``--preprocess`` given to test.py applies test.py's usual
preprocessing instead (e.g. ``scale_width --load_size 512``). ``--num_test`` counts items. Items::

    {"A": the content image in [-1, 1], "A_paths": its file,
     "style": [a style image in [-1, 1], ...]    one tensor per style of the blend (one without),
     "style_paths": [its file, ...],
     "style_weights": [its weight, ...]}         floats summing to 1 ([1.0] without a blend)

Every bad input (no style images, a missing style file, weights that do not fit) is a one-line
``UserError``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from data.base_dataset import (
    DATASETS,
    OTHER,
    BaseDataset,
    ImageFolderDataset,
    folder_letter,
    preprocess_from_options,
)
from data.style_dataset import load_style_image
from data.transforms import Preprocess, sample_rng, to_tensor
from util.errors import UserError
from util.flags import add
from util.image import is_image_file, list_images, load_image

if TYPE_CHECKING:
    from options import Options


def image_files(folder: Path, what: str, opt: Options) -> list[Path]:
    """The images of a training folder; a one-line error naming the layout when there are none."""
    paths = list_images(folder, max_count=opt.max_dataset_size) if folder.is_dir() else []
    if not paths:
        layout = ContentStyleDataset.expected_layout(opt.phase)
        raise UserError(f"no {what} images found in {folder}: --dataset_mode content_style trains on {layout}")
    return paths


def blend_weights(weights: list[float] | None, count: int) -> list[float] | None:
    """``--style_weights`` checked against the ``count`` styles and normalised to sum 1; None
    without them (every style on its own)."""
    if weights is None:
        return None
    if len(weights) != count:
        raise UserError(
            f"--style_weights gives {len(weights)} weight(s) for {count} style image(s): give one weight per style"
        )
    shown = " ".join(f"{w:g}" for w in weights)
    if not all(w >= 0 and math.isfinite(w) for w in weights):
        raise UserError(f"--style_weights must be non-negative numbers, got {shown}")
    total = sum(weights)
    if total <= 0:
        raise UserError(f"--style_weights must not all be 0, got {shown}")
    return [w / total for w in weights]


@DATASETS.register("content_style")
class ContentStyleDataset(BaseDataset):
    """Content crops, each with a crop of a random style image (see the module's note)."""

    @classmethod
    def reads_file(cls, path: Path) -> bool:
        """test.py stylizes a single content image given as ``--dataroot``."""
        return is_image_file(path)

    @classmethod
    def expected_layout(cls, phase: str) -> str:
        return f"content images in {phase}A/ and style images in {phase}B/"

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        if not is_train:
            group = parser.add_argument_group("content_style")
            add(
                group,
                "--style_image",
                type=str,
                nargs="+",
                default=None,
                help="style images to apply (default: those of <dataroot>/<phase>B/)",
            )
            add(
                group,
                "--style_weights",
                type=float,
                nargs="+",
                default=None,
                help="blend the styles with these weights, one per style (normalised to sum 1): one result per "
                "content image instead of one per content and style",
            )
            add(
                group,
                "--style_size",
                type=int,
                default=512,
                help="resize style images so that their shorter side has this many pixels (0: keep their size)",
            )
        return parser

    def __init__(self, opt: Options, train: bool = True) -> None:
        super().__init__(opt)
        content_letter = folder_letter(opt.direction, "A")
        root = Path(opt.dataroot)
        self.dir_A, self.dir_B = root / f"{opt.phase}{content_letter}", root / f"{opt.phase}{OTHER[content_letter]}"
        self.A_paths = image_files(self.dir_A, "content", opt)
        self.B_paths = image_files(self.dir_B, "style", opt)
        self.serial = opt.serial_batches
        self.preprocess = preprocess_from_options(opt, train)

    def __len__(self) -> int:
        return len(self.A_paths)

    def __getitem__(self, index: int) -> dict:
        rng = sample_rng(self.seed, self.epoch, index)
        a_path = self.A_paths[index]
        b_index = index % len(self.B_paths) if self.serial else rng.randrange(len(self.B_paths))
        b_path = self.B_paths[b_index]
        try:
            a = self.preprocess(load_image(a_path, 3), rng)
            b = self.preprocess(load_image(b_path, 3), rng)
        except ValueError as e:
            raise UserError(f"{a_path} / {b_path}: {e}") from None
        return {"A": a, "A_paths": str(a_path), "B": b, "B_paths": str(b_path)}

    # ---- test time ----------------------------------------------------------------------------
    @classmethod
    def for_test(cls, opt: Options, side: str) -> StylePairs:
        root = Path(opt.dataroot)
        content_letter = folder_letter(opt.direction, side)
        style_paths = test_style_paths(opt, root, OTHER[content_letter])
        weights = blend_weights(opt.style_weights, len(style_paths))
        if opt.style_size < 0:
            raise UserError(f"--style_size must be 0 (keep the size) or positive, got {opt.style_size}")
        if root.is_file():
            if not is_image_file(root):
                raise UserError(f"--dataroot {root} is neither a folder nor an image file")
            folder, contents = root.parent, [root]
        else:
            nested = root / f"{opt.phase}{content_letter}"
            folder = nested if nested.is_dir() else root
            styles = {p.resolve() for p in style_paths}
            contents = [p for p in list_images(folder, max_count=opt.max_dataset_size) if p.resolve() not in styles]
            if not contents:
                raise UserError(f"no content images to stylise found in {folder}")
        styles = [to_tensor(load_style_image(str(path), 3, opt.style_size)) for path in style_paths]
        if "preprocess" in opt.explicit:
            preprocess = preprocess_from_options(opt, train=False)
        else:  # whole images at their own size: the model pads them to its size multiple
            preprocess = Preprocess(mode="none", flip=False, random_crop=False, size_multiple=1)
        return StylePairs(opt, folder, contents, style_paths, styles, weights, preprocess)

    @classmethod
    def real_folders(cls, opt: Options, side: str, splits: list[str]) -> list[Path]:
        """The style images of ``splits`` (``<split>B/``): FID/KID then say how close the results'
        statistics come to the paintings'."""
        letter = OTHER[folder_letter(opt.direction, side)]
        folders = [Path(opt.dataroot) / f"{split}{letter}" for split in splits]
        for folder in folders:
            if not folder.is_dir():
                raise UserError(f"{folder} does not exist: FID/KID compare the results with the style images")
        return folders


def test_style_paths(opt: Options, root: Path, letter: str) -> list[Path]:
    """``--style_image`` files, or the images of ``<dataroot>/<phase><letter>/``."""
    if opt.style_image:
        paths = [Path(p) for p in opt.style_image]
        for path in paths:
            if not path.is_file():
                raise UserError(f"--style_image {path} does not exist")
        return paths
    folder = root / f"{opt.phase}{letter}"
    if not folder.is_dir():
        where = f", or put them in {folder}/" if root.is_dir() else ""
        raise UserError(f"no style images: give test.py --style_image PATH [PATH ...]{where}")
    paths = list_images(folder, max_count=opt.max_dataset_size)
    if not paths:
        raise UserError(f"no style images found in {folder}")
    return paths


class StylePairs(ImageFolderDataset):
    """Each content image with each style, or with the one blend (see the module's note)."""

    names_styles = True

    def __init__(
        self,
        opt: Options,
        folder: Path,
        contents: list[Path],
        style_paths: list[Path],
        styles: list[torch.Tensor],
        weights: list[float] | None,
        preprocess: Preprocess,
    ) -> None:
        BaseDataset.__init__(self, opt)
        self.folder, self.paths, self.channels, self.preprocess = folder, contents, 3, preprocess
        self.style_paths, self.styles = style_paths, styles
        # which styles each result takes, with which weights
        if weights is None:
            self.blends = [([k], [1.0]) for k in range(len(styles))]
        else:
            self.blends = [(list(range(len(styles))), weights)]

    def __len__(self) -> int:
        return len(self.paths) * len(self.blends)

    def __getitem__(self, index: int) -> dict:
        content, blend = divmod(index, len(self.blends))
        path = self.paths[content]
        try:
            image = self.preprocess(load_image(path, self.channels), sample_rng(self.seed, self.epoch, content))
        except ValueError as e:
            raise UserError(f"{path}: {e}") from None
        chosen, weights = self.blends[blend]
        return {
            "A": image,
            "A_paths": str(path),
            "style": [self.styles[k] for k in chosen],
            "style_paths": [str(self.style_paths[k]) for k in chosen],
            "style_weights": list(weights),
        }
