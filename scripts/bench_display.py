#!/usr/bin/env python3
"""How much the live display slows training: time per visdom/HTML call, as a share of an iteration.

Starts a real visdom server on a free loopback port (or uses ``--port`` of a running one), drives
``VisdomBackend`` with typical work (8 losses per ``log``; 8 visuals of 3x256x256 per
``display``: random noise, the worst case for PNG size), times each call, and adds the server's
own CPU time (it shares the machine's cores with training). Also times ``HTMLBackend`` writing a
step and the calls while the server is down. Then prints the overhead per training iteration at
the given frequencies:

    overhead/iter = log_s / print_freq + display_s / display_freq + html_s / update_html_freq

as a share of ``--s-per-iter`` (default 2.31 s: reference defaults at crop 128 on this 2-core
CPU). The requirement is at most 5% at the default display_freq 400.

    .venv/bin/python scripts/bench_display.py [--s-per-iter 2.31] [--port 8097]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: make `util` importable

import torch  # noqa: E402

from monitor import LogRecord  # noqa: E402
from monitor.html_backend import HTMLBackend  # noqa: E402
from monitor.visdom_backend import VisdomBackend  # noqa: E402
from scripts.setup_visdom_offline import ensure_visdom_assets  # noqa: E402

LABELS = ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"]
LOSSES = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, workdir: Path) -> subprocess.Popen:
    ensure_visdom_assets(log=lambda message: None)
    log = open(workdir / "visdom.log", "wb")
    cmd = [sys.executable, "-m", "visdom.server", "-port", str(port), "-bind_local"]
    cmd += ["-env_path", str(workdir / "envs") + "/", "-logging_level", "WARNING"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: visdom server exited; see {workdir / 'visdom.log'}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("error: visdom server did not answer within 60 s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux); 0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def record(step: int, print_freq: int) -> LogRecord:
    losses = {name: 1.0 / (1 + step) + 0.01 * i for i, name in enumerate(LOSSES)}
    it = step * print_freq
    return LogRecord(epoch=1, epoch_iter=it, total_iters=it, losses=losses, lr=2e-4, time_per_iter=1.0, data_time=0.0)


def visuals(size: int) -> dict[str, torch.Tensor]:
    return {label: torch.rand(1, 3, size, size) * 2 - 1 for label in LABELS}


def timed(fn, n: int) -> float:
    """Mean seconds per call over n calls."""
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--s-per-iter", type=float, default=2.31, help="seconds per training iteration")
    parser.add_argument("--display-freq", type=int, default=400)
    parser.add_argument("--print-freq", type=int, default=100)
    parser.add_argument("--update-html-freq", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256, help="visual size (pixels)")
    parser.add_argument("--port", type=int, default=0, help="use this running server (default: start one)")
    parser.add_argument("--n-log", type=int, default=100)
    parser.add_argument("--n-display", type=int, default=20)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-display-") as tmp:
        workdir = Path(tmp)
        port = args.port or free_port()
        server = None if args.port else start_server(port, workdir)
        try:
            backend = VisdomBackend(port=port, env="bench_display", winsize=args.size, run_name="bench_display")
            if not backend.connected:
                raise SystemExit(f"error: no visdom server at port {port}")
            images = visuals(args.size)
            backend.log(record(0, args.print_freq))  # warm-up: creates the windows
            backend.display(0, 0, images)

            server_cpu0 = cpu_seconds(server.pid) if server else 0.0
            log_s = timed(lambda i: backend.log(record(i + 1, args.print_freq)), args.n_log)
            server_cpu1 = cpu_seconds(server.pid) if server else 0.0
            display_s = timed(lambda i: backend.display(1, i * args.display_freq, images), args.n_display)
            server_cpu2 = cpu_seconds(server.pid) if server else 0.0
            log_server_s = (server_cpu1 - server_cpu0) / args.n_log
            display_server_s = (server_cpu2 - server_cpu1) / args.n_display

            html = HTMLBackend(workdir / "web", run_name="bench", update_html_freq=1, winsize=args.size)
            html_s = timed(lambda i: html.display(1, (i + 1) * 1000, images), 5)

            with contextlib.redirect_stderr(io.StringIO()):  # its one (expected) warning
                down = VisdomBackend(port=free_port(), env="bench_down")  # nothing listens there
            down_s = timed(lambda i: down.log(record(i + 1, args.print_freq)), 1000)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=10)

    per_iter = (
        (log_s + log_server_s) / args.print_freq
        + (display_s + display_server_s) / args.display_freq
        + html_s / args.update_html_freq
    )
    print(f"visdom log (8 losses + lr):        {log_s * 1e3:7.2f} ms client + {log_server_s * 1e3:6.2f} ms server CPU")
    print(
        f"visdom display (8 x 3x{args.size}x{args.size}): {display_s * 1e3:7.2f} ms client + "
        f"{display_server_s * 1e3:6.2f} ms server CPU"
    )
    print(f"HTML page step (8 PNG + page):     {html_s * 1e3:7.2f} ms (every {args.update_html_freq} iterations)")
    print(f"visdom log, server down:           {down_s * 1e6:7.2f} us")
    print(
        f"per iteration at print_freq {args.print_freq}, display_freq {args.display_freq}, "
        f"update_html_freq {args.update_html_freq}: {per_iter * 1e3:.3f} ms"
    )
    for s_per_iter in sorted({args.s_per_iter, 0.392, 0.1}, reverse=True):
        mark = "  <- --s-per-iter" if s_per_iter == args.s_per_iter else ""
        print(f"  at {s_per_iter:6.3f} s/iter: {100 * per_iter / s_per_iter:7.4f}% of training time{mark}")
    share = per_iter / args.s_per_iter
    print(f"requirement <= 5% at display_freq {args.display_freq}: {'met' if share <= 0.05 else 'NOT met'}")
    return 0 if share <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
