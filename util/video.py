"""Video files for test.py: decoding a clip frame by frame (``VideoReader``) and encoding frames into
a video (``VideoWriter``), with PyAV (``pip install av``), an optional package imported only here and
only when a video is read or written.

Frames are HxWx3 uint8 RGB arrays, like the decoded images of ``util.image``. Decoding is lazy: a
clip of any length is read one frame at a time, never held in memory. Audio is neither read nor
written, and the frame rate of the output is constant (the source's average rate for a variable
rate clip).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType, TracebackType

import numpy as np

from util.errors import UserError

# Containers a video is recognised by (the file itself decides what PyAV can decode).
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp", ".ogv"}
)
# Encoders for the output video, best first: H.264 plays in browsers and every player; MPEG-4 part 2
# ships with every FFmpeg build, so PyAV's wheels always have it.
ENCODERS = ("libx264", "mpeg4")


def is_video_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def require_av(why: str) -> ModuleType:
    """The ``av`` module, or a one-line ``UserError`` saying to install it (``why``: what needs it)."""
    try:
        import av
    except ImportError:
        raise UserError(f"{why} needs PyAV: pip install av") from None
    return av


def av_available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def available_encoder(preferred: tuple[str, ...] = ENCODERS) -> str | None:
    """The first encoder of ``preferred`` this PyAV build has; None without PyAV or without any."""
    if not av_available():
        return None
    import av

    for name in preferred:
        try:
            av.codec.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):
            continue
        return name
    return None


def _reason(error: BaseException) -> str:
    """FFmpeg's message without the file name PyAV appends (the caller names the file)."""
    text = getattr(error, "strerror", None) or str(error)
    return text.splitlines()[0].strip() if text else type(error).__name__


def _quarter_turns(frame: object) -> int:
    """Counter-clockwise quarter turns that show ``frame`` upright: its display matrix's rotation
    (phones record portrait clips as landscape frames with a rotation of -90 or 90 degrees)."""
    return round(getattr(frame, "rotation", 0) / 90) % 4


def upright_size(frame: object) -> tuple[int, int]:
    """(width, height) of ``frame`` as a player shows it."""
    width, height = frame.width, frame.height
    return (height, width) if _quarter_turns(frame) % 2 else (width, height)


def upright(frame: object) -> np.ndarray:
    """``frame`` as an HxWx3 uint8 RGB array, turned as a player shows it (FFmpeg's autorotate)."""
    array = frame.to_ndarray(format="rgb24")
    turns = _quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


class VideoReader:
    """The video stream of ``path``: ``size`` (width, height, as shown: a rotation in the file's
    display matrix is applied to every frame), ``fps`` (average frame rate, a
    ``Fraction``; None when the file does not say), ``frame_count`` (what the container says, 0 when
    it does not: some containers only know by decoding), and ``frames()`` decoding the frames in
    order. Opening decodes the first frame, so an unreadable file, a file without a video stream and
    a clip without frames are ``UserError``s here, before anything is translated."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        av = require_av(f"reading the video {self.path}")
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise UserError(f"{self.path} holds no video stream")
                stream = container.streams.video[0]
                self.fps: Fraction | None = stream.average_rate or stream.guessed_rate or None
                self.frame_count = int(stream.frames or 0)
                self.codec = stream.codec_context.name
                first = next(iter(container.decode(stream)), None)
        except av.error.FFmpegError as e:
            raise UserError(f"cannot read the video {self.path}: {_reason(e)}") from None
        if first is None:
            raise UserError(f"the video {self.path} has no frames")
        self.size = upright_size(first)

    def count_frames(self) -> int:
        """The number of frames, counted from the stream's packets (read, not decoded): for
        containers that do not record it (Matroska, WebM)."""
        import av

        try:
            with av.open(str(self.path)) as container:
                return sum(packet.size > 0 for packet in container.demux(container.streams.video[0]))
        except av.error.FFmpegError as e:
            raise UserError(f"cannot read the video {self.path}: {_reason(e)}") from None

    def frames(self) -> Iterator[np.ndarray]:
        """Every frame in order as an HxWx3 uint8 RGB array, decoded one at a time. A frame of
        another size than the first, or a decoding error, is a ``UserError`` naming the frame."""
        import av

        index = 0
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"  # frame and slice threads: several times faster on long clips
                for frame in container.decode(stream):
                    size = upright_size(frame)
                    if size != self.size:
                        raise UserError(
                            f"frame {index + 1} of {self.path} is {size[0]}x{size[1]}, the first "
                            f"{self.size[0]}x{self.size[1]}: clips that change size are not supported"
                        )
                    yield upright(frame)
                    index += 1
        except av.error.FFmpegError as e:
            raise UserError(f"cannot decode frame {index + 1} of {self.path}: {_reason(e)}") from None


class VideoWriter:
    """Encode frames (HxWx3 uint8 RGB arrays, all of one size) into a video file at ``fps``, with the
    first of ``encoders`` this PyAV has (``ENCODERS``: H.264, else MPEG-4), in a container chosen by
    the file's suffix (e.g. ``.mp4``).

    The file appears only when the writer closes without an error (a temporary file next to it is
    renamed over it), so a crash leaves the old file or none, never a broken one. 4:2:0 chroma, which
    players expect, needs even sides: an odd width or height gets one more column or row repeated
    from the edge (``padded``). Quality: H.264 CRF 18 (visually lossless for most footage; the PNG
    frames next to the video are the exact outputs), MPEG-4 at its finest quantiser scale (2)."""

    def __init__(
        self, path: str | Path, size: tuple[int, int], fps: Fraction | float, encoders: tuple[str, ...] = ENCODERS
    ) -> None:
        self.path = Path(path)
        self.size = size
        self.fps = Fraction(fps).limit_denominator(1001000) if not isinstance(fps, Fraction) else fps
        if self.fps <= 0:
            raise UserError(f"the frame rate of {self.path} must be positive, got {fps}")
        codec = available_encoder(encoders)
        if codec is None:
            raise UserError(f"no video encoder ({', '.join(encoders)}) in this PyAV build: {self.path} not written")
        self.codec = codec
        width, height = size
        self.encoded_size = (width + width % 2, height + height % 2)
        self.frames = 0
        import av

        self._av = av
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        container_format = {".mkv": "matroska", ".m4v": "mp4"}.get(self.path.suffix.lower(), self.path.suffix[1:])
        try:
            self._container = av.open(str(self._tmp), "w", format=container_format)
            self._stream = self._container.add_stream(codec, rate=self.fps)
            self._stream.width, self._stream.height = self.encoded_size
            self._stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                self._stream.options = {"crf": "18"}
            else:  # a fixed quantiser: the codec's default bit rate (200 kb/s) blurs anything larger than a thumbnail
                self._stream.codec_context.qscale = 2
        except (av.error.FFmpegError, ValueError) as e:
            self._tmp.unlink(missing_ok=True)
            raise UserError(f"cannot write the video {self.path}: {_reason(e)}") from None

    @property
    def padded(self) -> bool:
        return self.encoded_size != self.size

    def write(self, frame: np.ndarray) -> None:
        """Encode one more frame."""
        height, width = frame.shape[:2]
        if (width, height) != self.size:
            raise UserError(
                f"frame {self.frames + 1} for {self.path} is {width}x{height}, the video {self.size[0]}x{self.size[1]}"
            )
        if self.padded:
            frame = np.pad(
                frame, ((0, self.encoded_size[1] - height), (0, self.encoded_size[0] - width), (0, 0)), "edge"
            )
        video_frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames  # in units of 1/fps: frame n is shown at n / fps seconds
        try:
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        except self._av.error.FFmpegError as e:
            raise UserError(f"cannot write frame {self.frames + 1} of {self.path}: {_reason(e)}") from None
        self.frames += 1

    def close(self) -> Path:
        """Flush the encoder and put the file in place. Returns its path."""
        try:
            for packet in self._stream.encode():  # the frames the encoder still holds (B-frames, lookahead)
                self._container.mux(packet)
            self._container.close()
        except self._av.error.FFmpegError as e:
            self.abort()
            raise UserError(f"cannot write the video {self.path}: {_reason(e)}") from None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp made it 0600; give the file normal permissions
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop what was written: the file is not created (an older one stays)."""
        try:
            self._container.close()
        except self._av.error.FFmpegError:
            pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
