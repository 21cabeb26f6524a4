"""The frames of one clip, in order (``--dataset_mode video``, test.py only): ``--dataroot`` is a video
file (decoded with PyAV, ``pip install av``, one frame at a time) or a folder of frames (image files
in natural order: ``frame2.png`` before ``frame10.png``).

test.py writes every translated frame and a video of them (engine/video.py). Frames are translated
at their full size (``--preprocess none`` unless another is given: the models pad to the
generator's size multiple and crop back), and all frames of a clip must have one size, so frames
batch with ``--test_batch_size``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from data.base_dataset import DATASETS, BaseDataset, preprocess_from_options
from data.transforms import sample_rng
from util.errors import UserError
from util.flags import INVOCATION, TEST_TIME, add
from util.image import list_images, load_image, to_rgb
from util.video import VIDEO_EXTENSIONS, VideoReader, is_video_file

if TYPE_CHECKING:
    from options import Options

FOLDER_FPS = 30  # a folder of frames says nothing about its rate: the usual one, unless --fps


def natural_key(name: str) -> tuple:
    """Sort key that orders the digit runs of a name by value: frame2 < frame10 (then by the name
    itself, so 'f01' and 'f1' keep a fixed order)."""
    parts = re.split(r"(\d+)", name)
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(parts)), name


# EXIF orientations that swap width and height (load_image applies them).
_TRANSPOSING = {5, 6, 7, 8}


def oriented_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file as ``load_image`` decodes it, from its header alone."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            if img.getexif().get(0x0112) in _TRANSPOSING:
                width, height = height, width
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise UserError(f"cannot read image {path}: {e}") from None
    return width, height


@DATASETS.register("video")
class VideoDataset(BaseDataset):
    """``{"A": tensor, "A_paths": str, "frame": int}`` per frame (``frame``: 0-based, in clip order;
    ``A_paths``: the frame's file, or ``<video>#<frame number>``). ``size`` (width, height) of the
    frames, ``fps`` of the output video (``--fps``, else the video's own rate, else 30), ``name``
    (the clip's, for result files). Decoding is sequential: items asked for in order (as test.py
    does) cost one decoded frame each; going back restarts the decoder."""

    trainable = False  # one clip, one domain: nothing to train on
    clip = True
    test_preprocess = "none"

    @classmethod
    def expected_layout(cls, phase: str) -> str:
        # completes "expected a folder holding ..." (options.resolve's message for a missing --dataroot)
        return f"frames (image files), or to be a video file itself ({', '.join(sorted(VIDEO_EXTENSIONS))})"

    @classmethod
    def reads_file(cls, path: Path) -> bool:
        return is_video_file(path)

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        if is_train:
            return parser  # test.py only
        add(
            parser.add_argument_group("video"),
            "--fps",
            scope=(INVOCATION, TEST_TIME),
            type=float,
            default=None,
            help=f"frame rate of the translated video (default: the source video's; {FOLDER_FPS} for a folder of "
            "frames)",
        )
        return parser

    @classmethod
    def resolve_options(cls, values: dict[str, Any], is_train: bool) -> None:
        fps = values.get("fps")
        if fps is not None and not fps > 0:  # also refuses nan
            raise UserError(f"--fps must be positive, got {fps}")
        if values.get("metrics"):
            raise UserError(
                f"--metrics {values['metrics']} score a test set against real images or ground truth; "
                "--dataset_mode video has neither: it writes the translated frames and a video"
            )

    def __init__(self, opt: Options, channels: int) -> None:
        super().__init__(opt)
        self.source = Path(opt.dataroot)
        self.folder = self.source if self.source.is_dir() else self.source.parent  # what frame paths are under
        self.channels = channels
        self.preprocess = preprocess_from_options(opt, train=False)
        self.limit = opt.max_dataset_size
        self.reader: VideoReader | None = None
        self.paths: list[Path] = []
        if self.source.is_dir():
            self.name = self.source.resolve().name
            self.paths = sorted(list_images(self.source, recursive=False), key=lambda p: natural_key(p.name))
            if not self.paths:
                raise UserError(f"no frames (image files) in {self.source}")
            if self.limit != float("inf"):
                self.paths = self.paths[: int(self.limit)]
            self.size = self.check_one_size(self.paths)
            source_fps = None
        else:
            self.name = self.source.stem
            self.reader = VideoReader(self.source)
            self.size = self.reader.size
            source_fps = self.reader.fps
        fps = opt.get("fps")
        self.fps = Fraction(fps).limit_denominator(1001000) if fps else source_fps or Fraction(FOLDER_FPS)
        self._cursor: Iterator[tuple[int, np.ndarray]] | None = None
        self._next = 0

    @classmethod
    def for_test(cls, opt: Options, side: str) -> VideoDataset:
        return cls(opt, opt.input_nc if side == "A" else opt.output_nc)

    @classmethod
    def real_folders(cls, opt: Options, side: str, splits: list[str]) -> list[Path]:
        raise UserError("--metrics fid/kid need the real images of the target domain: a clip has none")

    @staticmethod
    def check_one_size(paths: list[Path]) -> tuple[int, int]:
        """The frames' one (width, height); frames of different sizes cannot make one video."""
        first = oriented_size(paths[0])
        for path in paths[1:]:
            size = oriented_size(path)
            if size != first:
                raise UserError(
                    f"the frames of {path.parent} differ in size: {paths[0].name} is {first[0]}x{first[1]}, "
                    f"{path.name} {size[0]}x{size[1]}; a video's frames share one size"
                )
        return first

    def __len__(self) -> int:
        """The number of frames: the folder's; for a video file what its container says (counted by
        reading its packets, without decoding, when it does not say)."""
        if self.reader is None:
            return len(self.paths)
        count = self.reader.frame_count or self.reader.count_frames()
        return int(min(count, self.limit))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cursor"], state["_next"] = None, 0  # a decoder cannot be pickled (DataLoader workers)
        return state

    def frames(self) -> Iterator[tuple[int, np.ndarray | Path]]:
        """(index, frame) in order: decoded RGB arrays of a video, files of a folder."""
        if self.reader is None:
            yield from enumerate(self.paths)
            return
        for index, frame in enumerate(self.reader.frames()):
            if index >= self.limit:
                return
            yield index, frame

    def item(self, index: int, frame: np.ndarray | Path) -> dict:
        if isinstance(frame, Path):
            image, path = load_image(frame, self.channels), str(frame)
        else:
            image, path = to_rgb(Image.fromarray(frame)), f"{self.source}#{index + 1}"
            image = image.convert("L") if self.channels == 1 else image
        try:
            tensor = self.preprocess(image, sample_rng(self.seed, 0, index))
        except ValueError as e:
            raise UserError(f"{path}: {e}") from None
        return {"A": tensor, "A_paths": path, "frame": index}

    def items(self, limit: float = float("inf")) -> Iterator[dict]:
        """Every frame's item in order, at most ``limit``, decoding as it goes."""
        for index, frame in self.frames():
            if index >= limit:
                return
            yield self.item(index, frame)

    def __getitem__(self, index: int) -> dict:
        if self.reader is None:
            return self.item(index, self.paths[index])
        if self._cursor is None or index < self._next:
            self._cursor, self._next = self.frames(), 0
        for position, frame in self._cursor:
            self._next = position + 1
            if position == index:
                return self.item(index, frame)
        self._cursor = None
        raise IndexError(f"{self.source} has no frame {index + 1}")
