"""Translate a clip (``--dataset_mode video``: a video file or a folder of frames) with a loaded model.

For each test side of the model, into the result folder ``results/<name>/<phase>_<epoch>/``:

- ``frames/<label>/000001.png`` ... : every translated frame, numbered from 1 in clip order, as PNG
  (lossless: the exact 8-bit outputs; ``ffmpeg -i frames/fake/%06d.png`` re-encodes them at will);
- ``<clip>_<label>.mp4``: a video of them, when PyAV and an encoder are there (H.264, else MPEG-4),
  at the source's frame rate (``--fps``; 30 for a folder of frames), the frames' size (an odd side
  gets one edge pixel more: 4:2:0 video needs even sides), no audio;
- ``index.html``: the video and the first ``PREVIEW_FRAMES`` frames with every output of the model
  (input, translation, reconstruction: ``images/<clip>_<frame>_<label>.png``), not a row per frame
  (a clip has thousands).

Frames are decoded, translated and written one batch at a time: a clip of any length needs the
memory of one batch. Nothing is scored (a clip has no ground truth or reference set).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import torch
from torch.utils.data import DataLoader, IterableDataset
from tqdm import tqdm

from data import create_dataset
from data.video_dataset import VideoDataset
from engine.evaluation import MetricScorer, batches, result_array, test_batch_size
from models import BaseModel
from options import Options
from util.errors import UserError
from util.fileio import flush_to_disk
from util.html import HTMLPage
from util.image import save_image
from util.video import VideoWriter, av_available, available_encoder

PREVIEW_FRAMES = 8  # frames shown on index.html, with every output of the model
FRAME_NAME = re.compile(r"\d{6,}\.png")


class ClipItems(IterableDataset):
    """The items of a clip in order (at most ``limit``), for a DataLoader: with one worker process
    (``--num_threads`` > 0) the next frames are decoded while the model translates."""

    def __init__(self, dataset: VideoDataset, limit: float) -> None:
        self.dataset, self.limit = dataset, limit

    def __iter__(self) -> Iterator[dict]:
        return self.dataset.items(self.limit)


def translate_video(
    model: BaseModel,
    opt: Options,
    out_dir: Path,
    scorer: MetricScorer | None,
    title: str,
    durable: bool = True,
    results: dict[str, list[tuple[str, dict[str, Path]]]] | None = None,
) -> dict[str, dict]:
    """``engine.evaluation.translate_and_score`` for a clip: translate every frame for each test side
    of the model into ``out_dir`` (see the module's docstring). Returns an empty report (no scores);
    ``results`` gets the preview rows (test.py ``--use_wandb`` logs them)."""
    if scorer is not None:  # options.resolve refuses --metrics with a clip already
        raise UserError("--metrics cannot score a clip")
    page = HTMLPage(out_dir, title)
    for side in model.test_sides:
        dataset = create_dataset(opt, "test", side)
        if not isinstance(dataset, VideoDataset):
            raise UserError(f"--dataset_mode {opt.dataset_mode} gives no clip to translate")
        rows = translate_clip(model, side, dataset, opt, out_dir, page)
        if results is not None:
            results.setdefault(side, []).extend(rows)
    if durable:
        flush_to_disk()
    page.save()
    return {}


def translate_clip(
    model: BaseModel, side: str, dataset: VideoDataset, opt: Options, out_dir: Path, page: HTMLPage
) -> list[tuple[str, dict[str, Path]]]:
    """Translate the frames of ``dataset`` for test side ``side``: the frames, the video and the
    page's part for this side. Returns the preview rows, ``(stem, {label: file})``."""
    label = model.translation_label(side)
    frames_dir = out_dir / "frames" / label
    video_path = out_dir / f"{dataset.name}_{label}.mp4"
    encoder = available_encoder()
    loader = DataLoader(ClipItems(dataset, opt.num_test), batch_size=None, num_workers=min(opt.num_threads, 1))
    writer: VideoWriter | None = None
    rows: list[tuple[str, dict[str, Path]]] = []
    written = 0
    shown = sys.stderr.isatty()  # a bar for a person; len() may read the whole file (its packets): only then
    total = int(min(len(dataset), opt.num_test)) if shown else None
    progress = tqdm(total=total, unit="frame", desc=f"{dataset.name} -> {label}", disable=not shown)
    try:
        for batch in batches(loader, test_batch_size(model, opt)):
            outputs = model.inference(side, torch.stack([item["A"] for item in batch]), items=batch)
            for i, item in enumerate(batch):
                number = item["frame"] + 1
                frame = result_array(outputs[label][i], opt.aspect_ratio)
                save_image(frame, frames_dir / f"{number:06d}.png", fsync=False)
                if encoder is not None:
                    if writer is None:  # sized by the first output (--aspect_ratio may reshape it)
                        writer = VideoWriter(video_path, (frame.shape[1], frame.shape[0]), dataset.fps, (encoder,))
                    writer.write(frame)
                if number <= PREVIEW_FRAMES:
                    stem = f"{dataset.name}_{number:06d}"
                    files = {
                        name: save_image(
                            result_array(tensor[i], opt.aspect_ratio),
                            out_dir / "images" / f"{stem}_{name}.png",
                            fsync=False,
                        )
                        for name, tensor in outputs.items()
                    }
                    rows.append((stem, files))
                written += 1
            progress.update(len(batch))
        video = writer.close() if writer is not None else None
    except BaseException:
        if writer is not None:
            writer.abort()  # no half-written video; the frames written so far stay
        raise
    finally:
        progress.close()
    remove_stale_frames(frames_dir, written)
    add_to_page(page, dataset, label, frames_dir, out_dir, video, written, rows, opt.display_winsize)
    print(summary(dataset, label, frames_dir, video, writer, written))
    return rows


def remove_stale_frames(frames_dir: Path, count: int) -> None:
    """Frames numbered above ``count`` left by an earlier, longer run into the same folder: removed,
    so that the folder holds this run's frames only (as the video does)."""
    for path in frames_dir.glob("*.png"):
        if FRAME_NAME.fullmatch(path.name) and int(path.stem) > count:
            path.unlink()


def add_to_page(
    page: HTMLPage,
    dataset: VideoDataset,
    label: str,
    frames_dir: Path,
    out_dir: Path,
    video: Path | None,
    count: int,
    rows: list[tuple[str, dict[str, Path]]],
    width: int,
) -> None:
    page.add_header(f"{dataset.source} ({count} frames, {dataset.size[0]}x{dataset.size[1]}) -> {label}")
    if video is not None:
        page.add_video(str(video.relative_to(out_dir)), width=max(width, 512))
    page.add_text(f"every frame: {frames_dir.relative_to(out_dir)}/000001.png ... {count:06d}.png")
    if rows:
        page.add_text(f"the first {len(rows)} frames:")
    for stem, files in rows:
        page.add_images([(f"{stem}_{name}", str(path.relative_to(out_dir))) for name, path in files.items()], width)


def summary(
    dataset: VideoDataset, label: str, frames_dir: Path, video: Path | None, writer: VideoWriter | None, count: int
) -> str:
    """What was written, in one line for the console."""
    text = f"{dataset.name}: {count} frames translated ({label}) into {frames_dir}"
    if video is not None and writer is not None:
        padded = ""
        if writer.padded:
            padded = f", padded from {writer.size[0]}x{writer.size[1]}: 4:2:0 video needs even sides"
        size = f"{writer.encoded_size[0]}x{writer.encoded_size[1]}"
        return f"{text}\nvideo: {video} ({writer.codec}, {size}, {fps_text(dataset.fps)} fps{padded})"
    why = "pip install av" if not av_available() else "this PyAV has no H.264 or MPEG-4 encoder"
    return f"{text}\nno video written ({why}); the frames are all there"


def fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{float(fps):.3f}"
