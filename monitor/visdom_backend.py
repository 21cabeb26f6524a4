"""Live training monitor in visdom: a view over the run, never a requirement for it.

What the visdom page shows (env = the run name unless ``--display_env`` is given):

- ``images`` pane: the current visuals, the first image of the batch of each, ``ncols`` per row
  in the order the model gives them (for CycleGAN with ncols 4: real_A, fake_B, rec_A, idt_B on
  one row and real_B, fake_A, rec_B, idt_A on the next),
  each with its label under it; the pane title gives the epoch and iteration. It is an HTML
  pane (images as PNG data URLs in a table) because visdom's image grid cannot carry a label per
  image. With ``ncols <= 0`` each visual gets its own image pane titled with its label instead
  (the reference's behaviour for ``--display_ncols 0``).
- ``losses`` plot: one trace per loss name, x = ``total_iters`` (the iteration counter train.py
  passes; a log record carries no epoch length, so no fractional epoch). Each logged step
  *appends* one point per trace (``update='append'``), never resends the history.
- ``lr`` plot: the learning rate, one point per logged step.
- ``metrics`` plot: whatever ``log_metrics`` gets (FID, KID, ...), one trace per name.
- one text pane per ``show_text`` title (e.g. the resolved options), HTML-escaped in ``<pre>``.

Window ids are fixed names (``images``, ``losses``, ``lr``, ``metrics``, ``text_<title>``), so one
env holds one run: the default env, the run name, keeps runs apart.

Failure behaviour: this backend never starts a server. When the server does not answer, training
goes on and ONE warning is printed per outage, naming ``make visdom`` / ``scripts/start_visdom.sh``.
While it is down every call only buffers the logged points (microseconds), and the connection is
retried silently: 1 s after it was lost, then twice as long after each failed try, at most every
``retry_interval`` seconds (a restarted server is back within seconds; a remote server that is
gone for good costs a short connect timeout every ``retry_interval`` s). When the server is back, every plot
is rebuilt from the buffered history in one call per window (the curves have no hole), the text
panes are resent, and the next ``display`` shows the images again.

Connecting never blocks for long: a TCP probe with a short timeout comes first, the visdom client
runs without its websocket (we need no events from the page; the socket thread waits up to 5 s
and retries forever), every HTTP request has a timeout, and visdom's own log messages are
silenced.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import re
import socket
import sys
import time
from collections.abc import Callable
from urllib.parse import urlparse

import numpy as np
import requests
import torch
import visdom
from PIL import Image
from tqdm import tqdm

from monitor.base import Backend, LogRecord
from util.image import tensor_to_uint8

# "Setting up a new session...", "Without the incoming socket you cannot receive events ..." are
# logged at WARNING on every connect; they say nothing useful to someone training a model.
logging.getLogger("visdom").setLevel(logging.ERROR)

FIRST_RETRY_S = 1.0  # the first reconnection try after an outage began (then doubling)


class _Client(visdom.Visdom):
    """visdom's client with a timeout on every request and connection errors that propagate.

    Stock ``Visdom`` posts without a timeout (a hung server would hang training) and its
    ``win_exists`` prints "Error connecting to Visdom server!" and returns None on connection
    errors; here they raise ``ConnectionError`` so the backend notices and stays quiet.
    """

    def __init__(self, *args, request_timeout: float, **kwargs) -> None:
        self.request_timeout = request_timeout  # set before super().__init__, which already posts
        super().__init__(*args, **kwargs)

    def _handle_post(self, url: str, data=None) -> str:
        response = self.session.post(url, data={} if data is None else data, timeout=self.request_timeout)
        response.raise_for_status()
        return response.text

    def win_exists(self, win: str, env: str | None = None) -> bool | None:
        answer = self._win_exists_wrap(win, env)
        return {"true": True, "false": False}.get(answer)


class _Series:
    """The full history of one plot window, so it can be rebuilt in one call after an outage."""

    def __init__(self) -> None:
        self.names: list[str] = []  # trace order, first-seen
        self.points: list[tuple[float, dict[str, float]]] = []

    def add(self, x: float, values: dict[str, float]) -> None:
        """Record a point; a name not seen before becomes a new trace (at the end)."""
        self.names.extend(name for name in values if name not in self.names)
        self.points.append((float(x), {k: float(v) for k, v in values.items()}))

    def arrays(self, points: list[tuple[float, dict[str, float]]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """X, Y of shape (n_points, n_traces); a trace missing at a point is NaN (a gap)."""
        points = self.points if points is None else points
        y = np.array([[values.get(name, math.nan) for name in self.names] for _, values in points], dtype=float)
        x = np.repeat(np.array([p[0] for p in points], dtype=float)[:, None], len(self.names), axis=1)
        return x, y


class VisdomBackend(Backend):
    """Shows a run in a visdom env; see the module docstring for the panes and failure behaviour."""

    def __init__(
        self,
        server: str = "http://localhost",
        port: int = 8097,
        env: str = "main",
        ncols: int = 4,
        winsize: int = 256,
        run_name: str = "",
        retry_interval: float = 30.0,
        connect_timeout: float = 0.5,
        request_timeout: float = 5.0,
    ) -> None:
        if not urlparse(server).scheme:
            server = "http://" + server
        self.server = server.rstrip("/")
        self.port = int(port)
        self.env = env
        self.ncols = int(ncols)
        self.winsize = int(winsize)
        self.run_name = run_name or env
        self.retry_interval = float(retry_interval)
        self.connect_timeout = float(connect_timeout)
        self.request_timeout = float(request_timeout)

        self.vis: _Client | None = None
        self.connected = False
        self._next_retry = 0.0  # time.monotonic() before which we do not try to reconnect
        self._retry_delay = min(FIRST_RETRY_S, self.retry_interval)  # doubles after each failed try
        self._warned = False  # one warning per outage
        self.losses = _Series()
        self.lr = _Series()
        self.metrics = _Series()
        # window -> (trace names, number of points) the server has; absent: (re)build it in full
        self._sent: dict[str, tuple[list[str], int]] = {}
        self.texts: dict[str, str] = {}  # title -> text, resent after an outage
        self._connect()

    # connection handling -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{self.server}:{self.port}"

    def _probe(self) -> bool:
        """A TCP connect with a short timeout: cheap, and cannot hang the way an HTTP post can."""
        host = urlparse(self.server).hostname or "localhost"
        try:
            with socket.create_connection((host, self.port), timeout=self.connect_timeout):
                return True
        except OSError:
            return False

    def _connect(self) -> bool:
        """Try to (re)connect, not before ``_next_retry``; on success rebuild every window."""
        now = time.monotonic()
        if now < self._next_retry:
            return False
        self._next_retry = now + self._retry_delay
        try:
            if not self._probe():
                raise ConnectionError("connection refused or timed out")
            # a fresh client each time: its constructor (re)creates the env on a restarted server
            self.vis = _Client(
                server=self.server,
                port=self.port,
                env=self.env,
                raise_exceptions=True,
                use_incoming_socket=False,
                request_timeout=self.request_timeout,
            )
            self.connected = True
            self._sent.clear()  # the server's windows may be gone or stale
            self._resync()
        except (OSError, requests.RequestException) as exc:
            self._lost(exc)
            return False
        self._retry_delay = min(FIRST_RETRY_S, self.retry_interval)  # the next outage: quick retries again
        if self._warned:
            self._say(f"visdom: connected to {self.url} again; live display resumed (env '{self.env}')")
        self._warned = False
        return True

    def _lost(self, exc: BaseException) -> None:
        self.connected = False
        self._next_retry = time.monotonic() + self._retry_delay
        self._retry_delay = min(2 * self._retry_delay, self.retry_interval)
        if not self._warned:
            self._warned = True
            self._say(
                f"WARNING: visdom: no server at {self.url} ({type(exc).__name__}); training goes on without the "
                f"live display. Start one with `make visdom` or `scripts/start_visdom.sh {self.port}` "
                f"(--display_id 0 turns visdom off). Retrying quietly, at least every {self.retry_interval:g} s."
            )

    @staticmethod
    def _say(message: str) -> None:
        tqdm.write(message, file=sys.stderr)  # keeps a progress bar intact

    def _ready(self) -> bool:
        return self.connected or self._connect()

    def _guard(self, action: Callable[[], None]) -> None:
        """Run one visdom call; a connection failure switches to buffering instead of raising."""
        if not self._ready():
            return
        try:
            action()
        except (OSError, requests.RequestException) as exc:
            self._lost(exc)

    def _resync(self) -> None:
        """Rebuild every window from the buffers (called right after a (re)connect)."""
        for title, text in self.texts.items():
            self._send_text(title, text)
        for win, series, opts in self._plots():
            if series.points:
                self._send_series(win, series, opts)

    # plots -------------------------------------------------------------------------------

    def _plots(self) -> list[tuple[str, _Series, dict]]:
        name = self.run_name
        return [
            ("losses", self.losses, {"title": f"{name} loss over time", "xlabel": "iteration", "ylabel": "loss"}),
            (
                "lr",
                self.lr,
                {
                    "title": f"{name} learning rate",
                    "xlabel": "iteration",
                    "width": 400,
                    "height": 300,
                    # from zero, in e-notation: plotly's default range for a constant 2e-4 is [-1, 1]
                    "layoutopts": {"plotly": {"yaxis": {"rangemode": "tozero", "exponentformat": "e"}}},
                },
            ),
            # markers: metrics come a few points at a time, and a lone point of a line is invisible
            (
                "metrics",
                self.metrics,
                {
                    "title": f"{name} metrics",
                    "xlabel": "iteration",
                    "width": 400,
                    "height": 300,
                    "markers": True,
                    "markersize": 6,
                },
            ),
        ]

    def _send_series(self, win: str, series: _Series, opts: dict) -> None:
        """Append the points the server lacks to every trace, or (re)build the window in one call.

        Appending needs the window to exist with the same traces in the same order (visdom
        appends by trace index); otherwise (first point, a new loss name, after an outage, or
        the window was closed in the page) the whole history goes in one call.
        """
        assert self.vis is not None
        names, count = self._sent.get(win, ([], 0))
        if count == len(series.points):
            return  # e.g. the reconnect that came with this point has already rebuilt the window
        if count and names == series.names and self.vis.win_exists(win, env=self.env):
            x, y = series.arrays(series.points[count:])
            self.vis.line(Y=y, X=x, win=win, env=self.env, update="append")
        else:
            x, y = series.arrays()
            opts = {**opts, "legend": list(series.names), "showlegend": True}
            self.vis.line(Y=y, X=x, win=win, env=self.env, opts=opts)
        self._sent[win] = (list(series.names), len(series.points))

    def _add_point(self, win: str, x: float, values: dict[str, float]) -> None:
        series, opts = next((s, o) for w, s, o in self._plots() if w == win)
        series.add(x, values)
        self._guard(lambda: self._send_series(win, series, opts))

    # Backend API -------------------------------------------------------------------------

    def log(self, record: LogRecord) -> None:
        self._add_point("losses", record.total_iters, record.losses)
        self._add_point("lr", record.total_iters, {"lr": record.lr})

    def log_metrics(
        self, epoch: int, total_iters: int, metrics: dict[str, float], info: dict[str, object] | None = None
    ) -> None:
        if metrics:  # the plot shows values only; info goes to loss_log.jsonl
            self._add_point("metrics", total_iters, metrics)

    def show_text(self, title: str, text: str) -> None:
        self.texts[title] = text
        self._guard(lambda: self._send_text(title, text))

    def _send_text(self, title: str, text: str) -> None:
        assert self.vis is not None
        win = "text_" + re.sub(r"\W+", "_", title).strip("_").lower()
        body = f"<pre style='font-size:11px;margin:0'>{html.escape(text)}</pre>"
        self.vis.text(body, win=win, env=self.env, opts={"title": title, "width": 520, "height": 400})

    def display(self, epoch: int, total_iters: int, visuals: dict[str, torch.Tensor]) -> None:
        # Only now are images encoded: while the server is down this costs nothing.
        self._guard(lambda: self._send_images(epoch, total_iters, visuals))

    def _send_images(self, epoch: int, total_iters: int, visuals: dict[str, torch.Tensor]) -> None:
        assert self.vis is not None
        title = f"{self.run_name} images (epoch {epoch}, iteration {total_iters})"
        arrays = {label: tensor_to_uint8(image[0] if image.dim() == 4 else image) for label, image in visuals.items()}
        if self.ncols <= 0:  # one pane per visual
            for label, array in arrays.items():
                opts = {"title": f"{label} (epoch {epoch}, iteration {total_iters})", "caption": label}
                self.vis.image(array.transpose(2, 0, 1), win=f"image_{label}", env=self.env, opts=opts)
            return
        self.vis.text(
            self._image_table(arrays),
            win="images",
            env=self.env,
            opts={"title": title, **self._image_pane_size(len(arrays))},
        )

    def _image_pane_size(self, count: int) -> dict[str, int]:
        cols = min(self.ncols, max(count, 1))
        rows = math.ceil(count / cols)
        # cell = image + padding; row = image + label line; plus the pane's title bar and margins
        return {"width": cols * (self.winsize + 10) + 40, "height": rows * (self.winsize + 26) + 40}

    def _image_table(self, arrays: dict[str, np.ndarray]) -> str:
        """An HTML table of labelled images, ``ncols`` per row; labels are escaped."""
        cells = []
        for label, array in arrays.items():
            buffer = io.BytesIO()
            Image.fromarray(array).save(buffer, format="PNG")
            src = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
            name = html.escape(label)
            cells.append(
                f"<td style='padding:4px;text-align:center'><img src='{src}' alt='{name}' title='{name}' "
                f"style='width:{self.winsize}px;height:auto;display:block'><span>{name}</span></td>"
            )
        rows = ["<tr>" + "".join(cells[i : i + self.ncols]) + "</tr>" for i in range(0, len(cells), self.ncols)]
        return "<table class='visuals' style='border-collapse:collapse'>" + "".join(rows) + "</table>"

    def close(self) -> None:
        self.vis = None
        self.connected = False
