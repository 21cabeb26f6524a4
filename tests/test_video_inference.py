"""Inference at full resolution: test.py on a folder of images of any size and kind (``--preprocess
none``), and on a clip (``--dataset_mode video``: a video file or a folder of frames), writing every
translated frame and a video (data/video_dataset.py, engine/video.py, util/video.py)."""

from __future__ import annotations

import re
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import test as test_script
import train
from models.networks import GENERATORS, define_G
from models.tiling import run_generator
from tests.conftest import TINY, picture
from util.image import load_image, tensor_to_uint8

av = pytest.importorskip("av")

from util.video import VideoReader, VideoWriter, available_encoder  # noqa: E402  (after the av check)

ENCODER = available_encoder()


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def pretrained(tmp_path: Path, netG: str, seed: int = 0) -> tuple[torch.nn.Module, list[str]]:
    """A random generator saved as the reference's ``latest_net_G.pth`` (a pretrained model's file),
    and the test.py flags that load it with ``--model test``."""
    torch.manual_seed(seed)
    net = define_G(netG, 3, 3, 8, "instance", False, "normal", 0.02)
    run = tmp_path / "ck" / netG
    run.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), run / "latest_net_G.pth")
    flags = ["--model", "test", "--netG", netG, "--ngf", "8", "--no_dropout", "--name", netG]
    return net, [*flags, "--checkpoints_dir", str(tmp_path / "ck"), "--gpu_ids", "-1"]


@torch.no_grad()
def translated(net: torch.nn.Module, frame: np.ndarray, multiple: int) -> np.ndarray:
    """What test.py must write for one RGB uint8 frame: the generator's output at the frame's size."""
    x = torch.from_numpy(frame.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    return tensor_to_uint8(run_generator(net.train(), x, multiple)[0]).astype(np.int16)


def moving_square(index: int, width: int = 40, height: int = 56) -> np.ndarray:
    """Frame ``index`` of a test clip: an orange square moving over a blue-grey gradient."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 0] = 40
    frame[..., 1] = np.linspace(60, 140, height, dtype=np.uint8)[:, None]
    frame[..., 2] = np.linspace(90, 200, width, dtype=np.uint8)[None, :]
    frame[2 + 3 * index : 14 + 3 * index, 1 + 2 * index : 13 + 2 * index] = (250, 130, 30)
    return frame


def write_clip(path: Path, count: int, fps: int = 25, codec: str | None = None, rotation: int = 0) -> Path:
    """A small clip of ``count`` frames written with PyAV itself (H.264 or MPEG-4, 4:2:0); with
    ``rotation``, a display matrix that turns the frames that many degrees counter-clockwise."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec or ENCODER, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 40, 56, "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(moving_square(i), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode(path: Path) -> tuple[list[np.ndarray], Fraction]:
    """Every frame of a video as decoded by PyAV (RGB uint8, its default conversion) and its rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [f.to_ndarray(format="rgb24") for f in container.decode(stream)], stream.average_rate


def through_420(frame: np.ndarray) -> np.ndarray:
    """``frame`` after the RGB -> YUV 4:2:0 -> RGB conversion alone (no codec): the loss any 4:2:0
    video has, large on the noise-like outputs of an untrained generator."""
    yuv = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.astype(np.uint8)), format="rgb24").reformat(
        format="yuv420p"
    )
    return yuv.reformat(format="rgb24").to_ndarray().astype(np.int16)


def error_line(capsys, status: int) -> str:
    """The one stderr line of a failed test.py run (exit status 2, no traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("test.py: error: "), err
    return err[0]


# ---- part 1: a folder of images of any size ---------------------------------------------------------


def mixed_folder(folder: Path) -> Path:
    """Odd sizes, landscape and portrait, RGB, greyscale and half-transparent RGBA images."""
    for name, (w, h) in {"land": (67, 45), "wide": (130, 96), "port": (45, 67), "tall": (33, 70)}.items():
        picture(folder / f"{name}.png", w, h, seed=len(name) + w)
    Image.open(folder / "land.png").convert("L").save(folder / "grey.png")
    rgba = np.asarray(Image.open(folder / "wide.png").convert("RGBA")).copy()
    rgba[..., 3] = np.linspace(0, 255, rgba.shape[1], dtype=np.uint8)[None, :]
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    return folder


@pytest.mark.parametrize("netG", GENERATORS.names())
def test_folder_of_any_sizes_at_full_resolution(tmp_path: Path, netG: str) -> None:
    """--model test --preprocess none with every registered generator: each output has its input's
    size and is the generator's output for the whole image as decoded (grey repeated to RGB, alpha
    composited on white), padded to the generator's size multiple by reflection and cropped back
    (a U-Net needs sides divisible by 128 or 256: none of these are)."""
    folder = mixed_folder(tmp_path / "imgs")
    net, flags = pretrained(tmp_path, netG)
    multiple = GENERATORS.spec(netG).size_multiple
    args = ["--dataroot", str(folder), *flags, "--preprocess", "none", "--results_dir", str(tmp_path / "r")]
    assert test_script.main(args) == 0
    out = tmp_path / "r" / netG / "test_latest" / "images"
    for path in sorted(folder.iterdir()):
        source = np.asarray(load_image(path, 3))
        fake = png(out / f"{path.stem}_fake.png")
        assert fake.shape == source.shape, path.name
        assert np.abs(png(out / f"{path.stem}_real.png") - source).max() == 0, path.name
        assert np.abs(fake - translated(net, source, multiple)).max() <= 1, path.name


def test_folder_of_any_sizes_tiled(tmp_path: Path) -> None:
    """--tile at full resolution: outputs keep the input's size, and stay near the untiled ones
    without equalling them (every image here is wider or taller than a tile). Measured on these
    pictures with 64-px tiles, 32-px overlap and an untrained 6-block ResNet (noise-like outputs:
    the worst case for tiles): mean differences of 0.3-0.5 levels of 255 on the small images, 2.3
    on the 130x96 ones; bound 3.5. tests/test_tiling.py measures tiling's accuracy itself."""
    folder = mixed_folder(tmp_path / "imgs")
    _, flags = pretrained(tmp_path, "resnet_6blocks")
    args = ["--dataroot", str(folder), *flags, "--preprocess", "none"]
    assert test_script.main([*args, "--results_dir", str(tmp_path / "full")]) == 0
    tiled_args = ["--results_dir", str(tmp_path / "tiled"), "--tile", "64", "--tile_overlap", "32"]
    assert test_script.main([*args, *tiled_args]) == 0
    for path in sorted(folder.iterdir()):
        full = png(tmp_path / "full/resnet_6blocks/test_latest/images" / f"{path.stem}_fake.png")
        tiled = png(tmp_path / "tiled/resnet_6blocks/test_latest/images" / f"{path.stem}_fake.png")
        assert tiled.shape == full.shape == np.asarray(load_image(path, 3)).shape
        assert 0 < np.abs(tiled - full).mean() < 3.5, (path.name, np.abs(tiled - full).mean())


# ---- part 2: a clip ---------------------------------------------------------------------------------


def clip_results(tmp_path: Path, results: str, netG: str = "resnet_6blocks") -> Path:
    return tmp_path / results / netG / "test_latest"


@pytest.mark.skipif(ENCODER is None, reason="this PyAV has no H.264 or MPEG-4 encoder")
def test_video_file_every_frame_and_a_video(tmp_path: Path, capsys) -> None:
    """A 12-frame 40x56 clip at 25 fps, translated 4 frames per batch: 12 PNG frames numbered in
    order, each the generator's output for the decoded source frame (to 1/255); a video of 12 frames
    of 40x56 at 25 fps whose frames match the PNGs as closely as 4:2:0 video can (see below); a page
    with the video and 8 preview frames, not 12."""
    clip = write_clip(tmp_path / "clip.mp4", 12)
    net, flags = pretrained(tmp_path, "resnet_6blocks")
    args = ["--dataroot", str(clip), "--dataset_mode", "video", *flags, "--results_dir", str(tmp_path / "r")]
    assert test_script.main([*args, "--test_batch_size", "4"]) == 0
    out = clip_results(tmp_path, "r")
    assert f"video: {out / 'clip_fake.mp4'} ({ENCODER}, 40x56, 25 fps)" in capsys.readouterr().out

    sources, _ = decode(clip)
    names = sorted(p.name for p in (out / "frames" / "fake").iterdir())
    assert names == [f"{n:06d}.png" for n in range(1, 13)]
    frames = [png(out / "frames" / "fake" / name) for name in names]
    for source, frame in zip(sources, frames, strict=True):
        assert np.abs(frame - translated(net, source, 4)).max() <= 1

    video, fps = decode(out / "clip_fake.mp4")
    assert len(video) == 12 and fps == 25 and all(v.shape == (56, 40, 3) for v in video)
    # Tolerance: the PNGs are the exact outputs; the video is lossy twice. 4:2:0 chroma alone (no
    # codec: through_420) costs a mean of 11-14 levels of 255 on these noise-like outputs of an
    # untrained generator; H.264 at CRF 18 (or MPEG-4 at q 2) adds under 2 more (measured 0.7-1.2).
    # Each video frame is also nearer its own PNG than any other frame's: the order is kept.
    for i, decoded in enumerate(video):
        errors = [np.abs(decoded.astype(np.int16) - frame).mean() for frame in frames]
        assert errors[i] <= np.abs(through_420(frames[i]) - frames[i]).mean() + 2, (i, errors[i])
        assert int(np.argmin(errors)) == i, (i, errors)

    page = (out / "index.html").read_text()
    assert re.findall(r'<video[^>]* src="clip_fake.mp4"', page)
    shown = re.findall(r'<img[^>]* src="images/clip_(\d{6})_(real|fake).png"', page)
    assert sorted(set(shown)) == [(f"{n:06d}", label) for n in range(1, 9) for label in ("fake", "real")]
    assert np.array_equal(png(out / "images" / "clip_000008_fake.png"), frames[7])


@pytest.mark.skipif(ENCODER is None, reason="this PyAV has no H.264 or MPEG-4 encoder")
def test_num_test_limits_frames_and_a_rerun_leaves_no_stale_frames(tmp_path: Path) -> None:
    """--num_test 5 into the folder of an earlier 12-frame run: 5 frames and a 5-frame video, the
    earlier frames 6-12 removed. With a loader worker (--num_threads 1) decoding ahead and batches
    of 1, the frames are the same as from batches of 4 in the main process."""
    clip = write_clip(tmp_path / "clip.mp4", 12)
    _, flags = pretrained(tmp_path, "resnet_6blocks")
    args = ["--dataroot", str(clip), "--dataset_mode", "video", *flags, "--results_dir", str(tmp_path / "r")]
    assert test_script.main([*args, "--test_batch_size", "4"]) == 0
    out = clip_results(tmp_path, "r")
    first = {p.name: png(p) for p in (out / "frames" / "fake").iterdir()}
    assert test_script.main([*args, "--num_test", "5", "--num_threads", "1", "--test_batch_size", "1"]) == 0
    again = {p.name: png(p) for p in (out / "frames" / "fake").iterdir()}
    assert sorted(again) == [f"{n:06d}.png" for n in range(1, 6)]
    assert max(int(np.abs(again[name] - first[name]).max()) for name in again) <= 1  # float rounding of batch 4 vs 1
    assert len(decode(out / "clip_fake.mp4")[0]) == 5


@pytest.mark.skipif(ENCODER is None, reason="this PyAV has no H.264 or MPEG-4 encoder")
@pytest.mark.skipif(not hasattr(av.video.stream.VideoStream, "set_display_rotation"), reason="PyAV < 16")
def test_rotated_phone_clip_is_translated_upright(tmp_path: Path) -> None:
    """A phone's portrait clip: 40x56 frames stored with a display matrix turning them 90 degrees
    clockwise (rotation -90). The frames are translated as a player shows them, 56x40: each input is
    the decoded frame turned clockwise, each output the generator's output for it."""
    clip = write_clip(tmp_path / "phone.mp4", 3, rotation=-90)
    net, flags = pretrained(tmp_path, "resnet_6blocks")
    args = ["--dataroot", str(clip), "--dataset_mode", "video", *flags, "--results_dir", str(tmp_path / "r")]
    assert test_script.main(args) == 0
    out = clip_results(tmp_path, "r")
    stored, _ = decode(clip)
    for n, frame in enumerate(stored, start=1):
        shown = np.rot90(frame, -1)  # clockwise
        assert np.array_equal(png(out / "images" / f"phone_{n:06d}_real.png"), shown)
        assert np.abs(png(out / "frames" / "fake" / f"{n:06d}.png") - translated(net, shown, 4)).max() <= 1
    video, _ = decode(out / "phone_fake.mp4")
    assert len(video) == 3 and video[0].shape == (40, 56, 3)


@pytest.mark.skipif(ENCODER is None, reason="this PyAV has no H.264 or MPEG-4 encoder")
def test_frame_folder_in_numeric_order(tmp_path: Path, capsys) -> None:
    """frame1.png ... frame12.png (not zero-padded: by name, frame10 would come before frame2) are
    translated in numeric order; odd-sized 33x25 frames give 33x25 PNGs and a 34x26 video (4:2:0
    needs even sides) at --fps 12."""
    folder = tmp_path / "shots"
    folder.mkdir()
    for n in range(1, 13):
        Image.fromarray(moving_square(n - 1, 33, 25)).save(folder / f"frame{n}.png")
    net, flags = pretrained(tmp_path, "resnet_6blocks")
    args = ["--dataroot", str(folder), "--dataset_mode", "video", "--fps", "12", *flags]
    assert test_script.main([*args, "--results_dir", str(tmp_path / "r")]) == 0
    assert f"({ENCODER}, 34x26, 12 fps, padded from 33x25: 4:2:0 video needs even sides)" in capsys.readouterr().out
    out = clip_results(tmp_path, "r")
    for n in range(1, 13):
        expected = translated(net, moving_square(n - 1, 33, 25), 4)
        assert np.abs(png(out / "frames" / "fake" / f"{n:06d}.png") - expected).max() <= 1, n
    video, fps = decode(out / "shots_fake.mp4")
    assert len(video) == 12 and fps == 12 and video[0].shape == (26, 34, 3)


def test_cycle_gan_run_translates_a_clip_both_ways_at_full_frame_size(tiny_dataset: Path, tmp_path: Path) -> None:
    """A CycleGAN run trained on 32x32 crops (resize_and_crop): test.py on a clip takes the run's
    architecture but translates the full 40x56 frames (a clip defaults to --preprocess none), with
    each generator: frames/fake_B and frames/fake_A."""
    common = ["--dataroot", str(tiny_dataset), "--name", "cg", "--checkpoints_dir", str(tmp_path / "ck")]
    assert train.main([*common, *TINY, "--max_iters", "1", "--seed", "0"]) == 0
    clip = write_clip(tmp_path / "clip.mp4", 3)
    args = [
        "--dataroot",
        str(clip),
        "--dataset_mode",
        "video",
        "--name",
        "cg",
        "--checkpoints_dir",
        str(tmp_path / "ck"),
    ]
    assert test_script.main([*args, "--gpu_ids", "-1", "--results_dir", str(tmp_path / "r")]) == 0
    out = tmp_path / "r" / "cg" / "test_latest"
    for label in ("fake_B", "fake_A"):
        frames = sorted((out / "frames" / label).iterdir())
        assert len(frames) == 3 and png(frames[0]).shape == (56, 40, 3)
        assert (out / f"clip_{label}.mp4").is_file() == (ENCODER is not None)


# ---- bad input: one line, exit 2, nothing written ---------------------------------------------------


def junk_file(tmp_path: Path) -> Path:
    path = tmp_path / "junk.mp4"
    path.write_bytes(b"not a video " * 100)
    return path


def truncated_file(tmp_path: Path) -> Path:
    data = write_clip(tmp_path / "whole.mp4", 12).read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path


def zero_frames(tmp_path: Path) -> Path:
    """An AVI whose video stream has no frames (an MP4 muxer drops an empty stream altogether)."""
    path = tmp_path / "empty.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 40, 56, "yuv420p"
        container.start_encoding()
    return path


def no_video_stream(tmp_path: Path) -> Path:
    path = tmp_path / "nostream.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 40, 56, "yuv420p"
        container.start_encoding()
    return path


def empty_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "none"
    folder.mkdir()
    (folder / "notes.txt").write_text("no frames here")
    return folder


def mixed_sizes(tmp_path: Path) -> Path:
    folder = tmp_path / "mixed"
    picture(folder / "f1.png", 40, 56, seed=1)
    picture(folder / "f2.png", 40, 56, seed=2)
    picture(folder / "f10.png", 56, 40, seed=3)
    return folder


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (junk_file, r"cannot read the video .*junk\.mp4: Invalid data found when processing input$"),
        (truncated_file, r"cannot read the video .*cut\.mp4: "),
        (zero_frames, r"the video .*empty\.avi has no frames$"),
        (no_video_stream, r"nostream\.mp4 holds no video stream$"),
        (empty_folder, r"no frames \(image files\) in .*none$"),
        (mixed_sizes, r"the frames of .*mixed differ in size: f1\.png is 40x56, f10\.png 56x40; "),
    ],
)
def test_bad_clips_are_one_line_errors(tmp_path: Path, capsys, make, message: str) -> None:
    _, flags = pretrained(tmp_path, "resnet_6blocks")
    source = make(tmp_path)
    capsys.readouterr()
    status = test_script.main(
        ["--dataroot", str(source), "--dataset_mode", "video", *flags, "--results_dir", str(tmp_path / "r")]
    )
    assert re.search(message, error_line(capsys, status))
    assert not any((tmp_path / "r").rglob("*.png")) and not any((tmp_path / "r").rglob("*.mp4"))


def test_a_video_file_needs_the_video_mode_and_a_positive_fps(tmp_path: Path, capsys) -> None:
    """--dataroot clip.mp4 with the default dataset mode is an options error pointing at the video
    mode (nothing is guessed); --fps 0 too."""
    clip = write_clip(tmp_path / "clip.mp4", 2) if ENCODER else junk_file(tmp_path)
    _, flags = pretrained(tmp_path, "resnet_6blocks")
    for extra, expected in (
        (
            [],
            f"--dataroot {clip} is a file, and --dataset_mode single reads a folder holding the images to "
            "translate; for this file use --dataset_mode video",
        ),
        (["--dataset_mode", "video", "--fps", "0"], "--fps must be positive, got 0.0"),
    ):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            test_script.main(["--dataroot", str(clip), *flags, *extra])
        lines = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(lines) == 2 and lines[1] == f"test.py: error: {expected}", lines


def test_train_py_says_a_video_is_for_test_py(tmp_path: Path, capsys) -> None:
    clip = junk_file(tmp_path)  # only its name matters here: nothing is decoded
    with pytest.raises(SystemExit) as exc:
        train.main(["--dataroot", str(clip), *TINY])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(lines) == 2, lines
    assert lines[1] == (
        f"train.py: error: --dataroot {clip} is a file, and --dataset_mode unaligned reads a folder holding trainA/ "
        "and trainB/; test.py reads this file with --dataset_mode video, train.py cannot train on it"
    )


def test_without_pyav(tmp_path: Path, capsys, monkeypatch) -> None:
    """PyAV is optional: without it (``import av`` fails) a video file is a one-line error saying to
    install it, and a folder of frames is still translated, every frame, with no video and a note."""
    monkeypatch.setitem(sys.modules, "av", None)  # what `import av` meets when it is not installed
    folder = tmp_path / "frames"
    folder.mkdir()
    for n in range(3):
        Image.fromarray(moving_square(n)).save(folder / f"{n}.png")
    (tmp_path / "clip.mp4").write_bytes(b"\0" * 64)
    _, flags = pretrained(tmp_path, "resnet_6blocks")
    base = ["--dataset_mode", "video", *flags, "--results_dir", str(tmp_path / "r")]
    capsys.readouterr()
    status = test_script.main(["--dataroot", str(tmp_path / "clip.mp4"), *base])
    assert (
        error_line(capsys, status)
        == f"test.py: error: reading the video {tmp_path / 'clip.mp4'} needs PyAV: pip install av"
    )
    assert test_script.main(["--dataroot", str(folder), *base]) == 0
    assert "no video written (pip install av); the frames are all there" in capsys.readouterr().out
    out = clip_results(tmp_path, "r")
    assert len(list((out / "frames" / "fake").iterdir())) == 3 and not list(out.glob("*.mp4"))


# ---- the writer -------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_writer_codecs_and_no_partial_file(tmp_path: Path, codec: str) -> None:
    """Both encoders write frames that decode back, in order and in size, within the 4:2:0 loss plus
    2 levels (smooth frames: 4:2:0 alone costs about 1); a write that fails midway leaves the file
    that was there before untouched and no temporary file."""
    if available_encoder((codec,)) is None:
        pytest.skip(f"this PyAV has no {codec} encoder")
    frames = [moving_square(i) for i in range(6)]
    path = tmp_path / "out.mp4"
    with VideoWriter(path, (40, 56), Fraction(30000, 1001), (codec,)) as writer:
        for frame in frames:
            writer.write(frame)
    reader = VideoReader(path)
    assert (reader.size, reader.codec, reader.fps) == (
        (40, 56),
        {"libx264": "h264"}.get(codec, codec),
        Fraction(30000, 1001),
    )
    decoded = list(reader.frames())
    assert len(decoded) == 6
    for i, (got, frame) in enumerate(zip(decoded, frames, strict=True)):
        limit = np.abs(through_420(frame) - frame).mean() + 2
        assert np.abs(got.astype(np.int16) - frame).mean() <= limit, i
    before = path.read_bytes()
    with pytest.raises(RuntimeError), VideoWriter(path, (40, 56), 25, (codec,)) as writer:
        writer.write(frames[0])
        raise RuntimeError("stopped midway")
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@pytest.mark.skipif(ENCODER is None, reason="this PyAV has no H.264 or MPEG-4 encoder")
def test_frames_counted_when_the_container_does_not_say(tmp_path: Path) -> None:
    """Matroska records no frame count: it is counted from the packets, without decoding."""
    reader = VideoReader(write_clip(tmp_path / "clip.mkv", 5))
    assert reader.frame_count == 0 and reader.count_frames() == 5 == len(list(reader.frames()))
