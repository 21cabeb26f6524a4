"""Content images and one style image, for feed-forward style transfer (``--dataset_mode style``,
the ``fast_style`` model's).

Training: ``--dataroot`` is a folder of content images (Johnson et al. trained on COCO's 80k
photos): its ``<phase>A/`` sub-folder (``trainA/``) when there is one, so a CycleGAN-layout
dataset serves as it is, otherwise the folder itself with its sub-folders (the style image is
left out if it lies inside). Each content image is preprocessed like the other datasets'
(``--preprocess``, ``--load_size``, ``--crop_size``, flips; the model sets 256x256). The style
image ``--style_image PATH`` is decoded once, resized so that its shorter side is
``--style_size`` pixels (default: ``--crop_size``; the aspect ratio is kept). Every item is::

    {"A": content crop, "A_paths": its file,
     "style": the whole style image at --style_size (the Gram targets; the same in every item),
     "B": a random --crop_size crop of the style image (what a discriminator takes as real;
          from the style image resized to a shorter side of at least --crop_size)}

Test (``for_test``): the images to stylise, at their own size (the network keeps it): a single
image file given as ``--dataroot``, or a folder: ``<dataroot>/<phase>A/`` (``testA/``) when
there is one, otherwise ``--dataroot`` itself. ``--preprocess`` given on test.py's command line
(or in its ``--config``) applies test.py's usual preprocessing instead (e.g. ``scale_width
--load_size 512``). Each item also carries the style the outputs are scored against by the style
metrics (``data.base_dataset.STYLE_KEYS``): the training run's ``--style_image`` (test.py takes it
and ``--style_size`` from the run's opt.yaml unless given) at ``--style_size`` as in training::

    {"A": content image, "A_paths": its file,
     "style": [the style image], "style_paths": [its file], "style_weights": [1.0]}

A style image that cannot be read (moved since training, say) leaves the style keys out: the
images are still stylised, and only the style metrics stop, with an error naming the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image

from data.base_dataset import DATASETS, BaseDataset, ImageFolderDataset, preprocess_from_options
from data.transforms import Preprocess, sample_rng, to_tensor
from util.errors import UserError
from util.flags import ARCHITECTURE, add
from util.image import is_image_file, list_images, load_image

if TYPE_CHECKING:
    from options import Options


def content_folder(opt: Options, phase: str) -> Path:
    """``<dataroot>/<phase>A`` when it exists, otherwise ``--dataroot`` itself."""
    nested = Path(opt.dataroot) / f"{phase}A"
    return nested if nested.is_dir() else Path(opt.dataroot)


def load_style_image(path: str | None, channels: int, shorter_side: int | None) -> Image.Image:
    """The style image, resized (bicubic) so that its shorter side is ``shorter_side`` (0 or
    None: as it is); a one-line ``UserError`` when it is not given, missing or unreadable."""
    if not path:
        raise UserError("--dataset_mode style needs --style_image PATH (the style to learn)")
    if not Path(path).is_file():
        raise UserError(f"--style_image {path} does not exist")
    try:
        image = load_image(path, channels)
    except UserError as e:
        raise UserError(f"--style_image: {e}") from None
    if not shorter_side:
        return image
    scale = shorter_side / min(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image if size == image.size else image.resize(size, Image.BICUBIC)


@DATASETS.register("style")
class StyleDataset(BaseDataset):
    """Content crops plus the style image (see the module's note)."""

    @classmethod
    def reads_file(cls, path: Path) -> bool:
        """test.py stylizes a single content image given as ``--dataroot``."""
        return is_image_file(path)

    @classmethod
    def expected_layout(cls, phase: str) -> str:
        return f"content images (or {phase}A/ of them), or one image to stylise (test.py)"

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        # test.py takes both from the trained run: the style its outputs are scored against
        group = parser.add_argument_group("style")
        add(
            group,
            "--style_image",
            scope=(ARCHITECTURE,),
            type=str,
            default=None,
            help="the style image (required for training; test.py: the run's, what the style metrics compare with)",
        )
        add(
            group,
            "--style_size",
            scope=(ARCHITECTURE,),
            type=int,
            default=None,
            help="the style image's shorter side in pixels for the Gram targets (default: --crop_size)",
        )
        return parser

    def __init__(self, opt: Options, train: bool = True) -> None:
        super().__init__(opt)
        if not Path(opt.dataroot).is_dir():
            raise UserError(f"--dataroot {opt.dataroot} is not a folder: training needs a folder of content images")
        self.folder = content_folder(opt, opt.phase)
        style = Path(opt.style_image).resolve() if opt.style_image else None
        self.paths = [p for p in list_images(self.folder, max_count=opt.max_dataset_size) if p.resolve() != style]
        if not self.paths:
            raise UserError(f"no content images found in {self.folder}")
        self.preprocess = preprocess_from_options(opt, train)
        style_size = opt.style_size or opt.crop_size
        if style_size < 1:
            raise UserError(f"--style_size must be at least 1, got {style_size}")
        image = load_style_image(opt.style_image, opt.output_nc, style_size)
        self.style = to_tensor(image)
        # the discriminator's real images: crops of crop_size, from an image at least that large
        large_enough = min(image.size) >= opt.crop_size
        self.crop_source = image if large_enough else load_style_image(opt.style_image, opt.output_nc, opt.crop_size)
        self.style_crops = Preprocess(mode="crop", crop_size=opt.crop_size, flip=not opt.no_flip)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        rng = sample_rng(self.seed, self.epoch, index)
        path = self.paths[index]
        try:
            content = self.preprocess(load_image(path, self.opt.input_nc), rng)
        except ValueError as e:
            raise UserError(f"{path}: {e}") from None
        crop = self.style_crops(self.crop_source, rng)
        return {"A": content, "A_paths": str(path), "style": self.style, "B": crop}

    # ---- test time ----------------------------------------------------------------------------
    @classmethod
    def for_test(cls, opt: Options, side: str) -> ImageFolderDataset:
        root = Path(opt.dataroot)
        if root.is_file():
            if not is_image_file(root):
                raise UserError(f"--dataroot {root} is neither a folder nor an image file")
            folder, paths = root.parent, [root]
        else:
            folder = content_folder(opt, opt.phase)
            paths = list_images(folder, max_count=opt.max_dataset_size)
            if not paths:
                raise UserError(f"no images to stylise found in {folder}")
        if "preprocess" in opt.explicit:
            preprocess = preprocess_from_options(opt, train=False)
        else:  # whole images at their own size: the network takes any size
            preprocess = Preprocess(mode="none", flip=False, random_crop=False, size_multiple=1)
        return ContentImages(opt, folder, paths, preprocess)

    @classmethod
    def real_folders(cls, opt: Options, side: str, splits: list[str]) -> list[Path]:
        raise UserError("--metrics fid/kid need real images of the target domain: a style is one image")


class ContentImages(ImageFolderDataset):
    """Given image files of ``folder`` (one, or all of it), in order: ``{"A": tensor, "A_paths": str}``
    plus the style keys when the style image can be read (see the module's note)."""

    def __init__(self, opt: Options, folder: Path, paths: list[Path], preprocess: Preprocess) -> None:
        BaseDataset.__init__(self, opt)
        self.folder, self.paths, self.channels, self.preprocess = folder, paths, opt.input_nc, preprocess
        self.style_path: str | None = opt.get("style_image")
        self.style: torch.Tensor | None = None
        self.style_error = ""
        if not self.style_path:
            self.style_error = "no --style_image was given, and the training run recorded none"
        elif not Path(self.style_path).is_file():
            self.style_error = f"the style image {self.style_path} (--style_image) no longer exists"
        else:
            try:
                style_size = opt.get("style_size") or opt.crop_size
                self.style = to_tensor(load_style_image(self.style_path, opt.output_nc, style_size))
            except UserError as e:
                self.style_error = str(e)

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        if self.style is not None:
            item.update(style=[self.style], style_paths=[self.style_path], style_weights=[1.0])
        return item

    def style_problem(self) -> str:
        return self.style_error
