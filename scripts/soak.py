"""Soak benchmark: does a long run leak memory, file handles, threads or disk?

    python scripts/soak.py                                  # 40 epochs, 2 loader workers, HTML page
    python scripts/soak.py --epochs 60 --visdom             # also a real visdom server (started here)
    python scripts/soak.py --epochs 5 --json soak.json -- --netG resnet_9blocks   # extra train.py flags

Trains a tiny CycleGAN (ngf/ndf 8, 32 px, a few images: ``scripts/make_demo_dataset.py``) as a
separate ``train.py`` process with everything that runs periodically switched on at high
frequency: ``latest`` saves every ``--save_every`` iterations and an epoch checkpoint every epoch,
the HTML page and (``--visdom``) the visdom display every few iterations, and an evaluation of the
test split (``--eval_freq 1 --metrics l1,psnr,ssim`` against the dataset's ground truth) after
every epoch. At each "End of epoch" line it reads, from /proc:

* RSS of the training process at the epoch's end and its peak during the epoch, and the peak
  number and total RSS of its descendants (the DataLoader workers, alive only while an epoch
  loads: a background thread samples every 0.2 s), in MiB (forked workers share most pages with
  the main process, so their RSS overstates what they add);
* its open file descriptors (entries of /proc/<pid>/fd) and threads (``Threads:`` of status),
  the lowest seen during the epoch: loader pipes and queue threads, a file being written, come and
  go, so one reading at an arbitrary moment is noise; a leak raises the floor (``fds_end`` and
  ``threads_end`` in the JSON are the readings at the epoch's end);
* the disk use of the run folder (allocated blocks, as ``du``) and its files, split into
  checkpoints, the HTML page (web/), logs and anything else;
* with ``--visdom``, the visdom server's RSS.

It prints a table, then a verdict per column: the least-squares slope per epoch after the
warm-up epochs (the first fifth, at least 2: caches, the allocator's arenas and the first saves
settle there), and whether that is growth: RSS growing more than max(2 %, 8 MiB) over the window,
any net growth of descriptors or threads, or disk outside checkpoints, web/ and logs growing.
Checkpoints (one per epoch here), the page's images and the logs grow by design; the script says
so and checks that each epoch checkpoint has the same size. After the run it also lists temporary
files left in the run folder (atomic writes' ``.*.tmp``, evaluations' ``.eval_*``): there must be
none. Exit status 0 whatever the verdict (it is a benchmark: read the figures), 1 if training failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

MiB = 1 << 20
EPOCH_LINE = re.compile(r"^End of epoch (\d+) / (\d+)")


# ---- reading /proc -------------------------------------------------------------------------------


def status_fields(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a dict (``VmRSS``: '123456 kB', ``Threads``: '12', ...)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def rss_bytes(pid: int) -> int:
    return int(status_fields(pid)["VmRSS"].split()[0]) * 1024


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children of each of its threads, recursively)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:  # the thread or process ended meanwhile
                continue
            found.extend(children)
            stack.extend(children)
    return found


@dataclass
class ProcessSample:
    rss_mib: float
    fds: int
    threads: int
    children: int
    children_rss_mib: float


def sample_process(pid: int) -> ProcessSample:
    """RSS, descriptors and threads of ``pid``, and the number and total RSS of its descendants."""
    status = status_fields(pid)
    children_rss = 0
    kids = descendants(pid)
    for child in kids:
        try:
            children_rss += rss_bytes(child)
        except (OSError, KeyError):  # ended between the listing and the read (or a zombie: no VmRSS)
            pass
    return ProcessSample(
        rss_mib=int(status["VmRSS"].split()[0]) / 1024,
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(status["Threads"]),
        children=len(kids),
        children_rss_mib=children_rss / MiB,
    )


class PeakWatcher(threading.Thread):
    """Samples a process every ``interval`` s in the background and keeps, per epoch, the peaks of
    its RSS and of its workers (count and total RSS): the DataLoader workers live only while an
    epoch's batches are loaded, so a sample at the epoch's end never sees them."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.peaks = self._empty()

    @staticmethod
    def _empty() -> dict[str, float]:
        inf = float("inf")
        return {"rss_peak_mib": 0.0, "workers_peak": 0, "workers_rss_peak_mib": 0.0, "fds_min": inf,
                "threads_min": inf, "samples": 0}  # fmt: skip

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                sample = sample_process(self.pid)
            except (OSError, KeyError):  # the process has ended (or is a zombie: no VmRSS)
                return
            with self.lock:
                peaks = self.peaks
                peaks["rss_peak_mib"] = max(peaks["rss_peak_mib"], sample.rss_mib)
                peaks["workers_peak"] = max(peaks["workers_peak"], sample.children)
                peaks["workers_rss_peak_mib"] = max(peaks["workers_rss_peak_mib"], sample.children_rss_mib)
                peaks["fds_min"] = min(peaks["fds_min"], sample.fds)
                peaks["threads_min"] = min(peaks["threads_min"], sample.threads)
                peaks["samples"] += 1

    def take(self) -> dict[str, float]:
        """The peaks since the last call (the epoch that just ended), and start afresh."""
        with self.lock:
            peaks, self.peaks = self.peaks, self._empty()
        return peaks


@dataclass
class DiskSample:
    total_mib: float
    files: int
    checkpoints_mib: float
    web_mib: float
    logs_mib: float
    other_mib: float
    temporary: list[str]


def sample_disk(run_dir: Path) -> DiskSample:
    """Allocated bytes under ``run_dir`` (st_blocks, as ``du``), by kind, and its temporary files."""
    sizes = {"checkpoints": 0, "web": 0, "logs": 0, "other": 0}
    files = 0
    temporary = []
    for path in run_dir.rglob("*"):
        try:
            st = path.lstat()
        except OSError:  # renamed or deleted while we walk (an atomic write, an evaluation's folder)
            continue
        relative = path.relative_to(run_dir)
        if any(part.startswith(".") for part in relative.parts):
            temporary.append(str(relative))
        if not path.is_file():
            continue
        files += 1
        used = st.st_blocks * 512
        if relative.parts[0] == "web":
            sizes["web"] += used
        elif path.suffix == ".pth" or relative.parts[0].endswith(".ranks"):  # DDP shards: <tag>.ranks/
            sizes["checkpoints"] += used
        elif path.name.startswith("loss_log") or path.suffix in (".txt", ".jsonl", ".yaml", ".json"):
            sizes["logs"] += used
        else:
            sizes["other"] += used
    return DiskSample(
        total_mib=sum(sizes.values()) / MiB,
        files=files,
        checkpoints_mib=sizes["checkpoints"] / MiB,
        web_mib=sizes["web"] / MiB,
        logs_mib=sizes["logs"] / MiB,
        other_mib=sizes["other"] / MiB,
        temporary=sorted(temporary),
    )


# ---- growth --------------------------------------------------------------------------------------


def slope(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their index (per epoch); 0 for fewer than 2."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def warmup_epochs(n: int) -> int:
    """Epochs left out of the growth fit: the first fifth, at least 2 (never all but one)."""
    return min(max(2, n // 5), max(n - 2, 0))


@dataclass
class Verdict:
    column: str
    slope_per_epoch: float
    over_window: float  # slope x (epochs in the window - 1): the growth the fit projects
    tolerance: float
    grows: bool


def verdict(column: str, values: list[float], tolerance: float) -> Verdict:
    """Growth of ``values`` (one per epoch) after the warm-up: the fitted slope, what it adds up to
    over the window, and whether that exceeds ``tolerance``."""
    window = values[warmup_epochs(len(values)) :]
    s = slope(window)
    over = s * max(len(window) - 1, 0)
    return Verdict(column, s, over, tolerance, over > tolerance)


def verdicts(rows: list[dict]) -> list[Verdict]:
    """The checks the module docstring describes, on the per-epoch rows."""

    def col(name: str) -> list[float]:
        return [float(r[name]) for r in rows]

    out = []
    for name in ("rss_mib", "rss_peak_mib", "workers_rss_peak_mib", "visdom_rss_mib"):
        if rows and name in rows[0]:
            values = col(name)
            out.append(verdict(name, values, max(0.02 * (values[0] if values else 0), 8.0)))
    for name in ("fds", "threads", "other_mib"):
        out.append(verdict(name, col(name), 0.5 if name != "other_mib" else 0.1))
    return out


# ---- the run -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_visdom(work: Path) -> tuple[subprocess.Popen, int]:
    """A stock visdom server on 127.0.0.1 (its assets must be in place: scripts/setup_visdom_offline.py)."""
    port = free_port()
    log = open(work / "visdom.log", "wb")
    command = [sys.executable, "-m", "visdom.server", "-port", str(port), "-bind_local"]
    command += ["-env_path", str(work / "visdom_envs") + "/", "-logging_level", "WARNING"]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"soak.py: error: visdom exited at start (see {work / 'visdom.log'})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("soak.py: error: visdom did not answer within 90 s")


def train_command(args: argparse.Namespace, data: Path, checkpoints: Path, visdom_port: int | None) -> list[str]:
    command = [sys.executable, str(REPO_ROOT / "train.py"), "--dataroot", str(data), "--name", "soak"]
    command += ["--checkpoints_dir", str(checkpoints), "--gpu_ids", "-1", "--seed", "0"]
    command += ["--ngf", "8", "--ndf", "8", "--netG", "resnet_6blocks", "--load_size", "36", "--crop_size", "32"]
    command += ["--n_epochs", str(args.epochs), "--n_epochs_decay", "0", "--num_threads", str(args.workers)]
    command += ["--save_epoch_freq", "1", "--save_latest_freq", str(args.save_every)]
    command += ["--print_freq", str(args.display_every), "--display_freq", str(args.display_every)]
    command += ["--update_html_freq", str(args.display_every), "--eval_freq", "1", "--metrics", "l1,psnr,ssim"]
    if visdom_port is None:
        command += ["--display_id", "0"]
    else:
        command += ["--display_id", "1", "--display_port", str(visdom_port), "--display_server", "http://127.0.0.1"]
    return command + args.train_args


def run(args: argparse.Namespace, work: Path) -> tuple[list[dict], int, DiskSample]:
    from scripts.make_demo_dataset import make_dataset

    data = work / "data"
    make_dataset(data, size=32, n_train=args.images, n_test=2, seed=0)
    visdom, port = start_visdom(work) if args.visdom else (None, None)
    checkpoints = work / "checkpoints"
    run_dir = checkpoints / "soak"
    rows: list[dict] = []
    try:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.setdefault("OMP_NUM_THREADS", "1")
        with open(work / "train.err", "wb") as err:
            proc = subprocess.Popen(
                train_command(args, data, checkpoints, port), stdout=subprocess.PIPE, stderr=err, text=True, env=env
            )
            assert proc.stdout is not None
            start = time.monotonic()
            watcher = PeakWatcher(proc.pid)
            watcher.start()
            for line in proc.stdout:
                match = EPOCH_LINE.match(line)
                if not match:
                    continue
                try:
                    sampled = sample_process(proc.pid)
                except OSError:  # the process ended right after printing the line
                    break
                row = {"epoch": int(match.group(1)), "seconds": round(time.monotonic() - start, 1)}
                row.update(asdict(sampled))
                peaks = watcher.take()
                row["rss_peak_mib"] = max(peaks["rss_peak_mib"], sampled.rss_mib)
                row["workers_peak"] = max(int(peaks["workers_peak"]), sampled.children)
                row["workers_rss_peak_mib"] = max(peaks["workers_rss_peak_mib"], sampled.children_rss_mib)
                # descriptors and threads: the epoch's floor. Loader pipes and queue threads, a
                # checkpoint being written, come and go; a leak raises the floor.
                row["fds_end"], row["threads_end"] = sampled.fds, sampled.threads
                first = not rows  # the first epoch's floor would be the interpreter starting up
                row["fds"] = sampled.fds if first else int(min(peaks["fds_min"], sampled.fds))
                row["threads"] = sampled.threads if first else int(min(peaks["threads_min"], sampled.threads))
                disk = asdict(sample_disk(run_dir))
                disk.pop("temporary")
                row.update(disk)
                if visdom is not None:
                    row["visdom_rss_mib"] = rss_bytes(visdom.pid) / MiB
                rows.append(row)
                if not args.quiet:
                    print(format_row(row, header=len(rows) == 1), flush=True)
            status = proc.wait()
            watcher.stopped.set()
    finally:
        if visdom is not None:
            visdom.terminate()
            visdom.wait(timeout=30)
    return rows, status, sample_disk(run_dir)


COLUMNS = [
    ("epoch", "epoch", "{:>5d}"),
    ("seconds", "s", "{:>6.1f}"),
    ("rss_mib", "RSS MiB", "{:>8.1f}"),
    ("rss_peak_mib", "peak MiB", "{:>8.1f}"),
    ("workers_peak", "workers", "{:>7d}"),
    ("workers_rss_peak_mib", "wrk MiB", "{:>8.1f}"),
    ("fds", "fds", "{:>4d}"),
    ("threads", "thr", "{:>4d}"),
    ("total_mib", "disk MiB", "{:>8.2f}"),
    ("files", "files", "{:>5d}"),
    ("checkpoints_mib", "ckpt MiB", "{:>8.2f}"),
    ("web_mib", "web MiB", "{:>7.2f}"),
    ("logs_mib", "log MiB", "{:>7.3f}"),
    ("other_mib", "other", "{:>6.3f}"),
    ("visdom_rss_mib", "visdom MiB", "{:>10.1f}"),
]


def format_row(row: dict, header: bool = False) -> str:
    present = [c for c in COLUMNS if c[0] in row]
    line = " ".join(fmt.format(row[key]) for key, _, fmt in present)
    if not header:
        return line
    title = " ".join(f"{label:>{len(fmt.format(row[key]))}}" for key, label, fmt in present)
    return title + "\n" + line


def report(rows: list[dict], final: DiskSample, run_dir: Path) -> list[str]:
    lines = []
    if len(rows) < 3:
        lines.append(f"only {len(rows)} epochs sampled: too few for a growth verdict (use --epochs 20 or more)")
    skip = warmup_epochs(len(rows))
    lines.append(f"growth after the first {skip} epochs (least-squares slope per epoch):")
    for v in verdicts(rows):
        word = "GROWS" if v.grows else "flat"
        lines.append(
            f"  {v.column:<21} {v.slope_per_epoch:+9.4f}/epoch, {v.over_window:+9.3f} over the window "
            f"(tolerance {v.tolerance:.1f}): {word}"
        )
    if rows:
        ckpt = slope([r["checkpoints_mib"] for r in rows[skip:]])
        web = slope([r["web_mib"] for r in rows[skip:]])
        logs = slope([r["logs_mib"] for r in rows[skip:]])
        lines.append(
            f"  by design: checkpoints {ckpt:+.3f} MiB/epoch (an epoch checkpoint every epoch), "
            f"web/ {web:+.3f} MiB/epoch (the page keeps every displayed step), logs {logs * 1024:+.2f} KiB/epoch"
        )
    epoch_files = sorted(run_dir.glob("[0-9]*.pth"), key=lambda p: int(p.stem.split("_")[0]))
    sizes = sorted({p.stat().st_size for p in epoch_files})
    lines.append(f"  epoch checkpoints: {len(epoch_files)}, sizes {', '.join(f'{s:,}' for s in sizes) or '-'} bytes")
    lines.append(f"  temporary files left in the run folder: {len(final.temporary)} {final.temporary or ''}".rstrip())
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="soak.py")
    parser.add_argument("--epochs", type=int, default=40, help="epochs to train (default 40)")
    parser.add_argument("--images", type=int, default=6, help="training images per domain (default 6)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (default 2)")
    parser.add_argument("--save_every", type=int, default=2, help="save latest every N iterations (default 2)")
    parser.add_argument("--display_every", type=int, default=2, help="log/HTML/visdom every N iterations")
    parser.add_argument("--visdom", action="store_true", help="start a visdom server and display to it")
    parser.add_argument("--out", type=Path, help="keep the run here (default: a temporary folder, deleted)")
    parser.add_argument("--json", type=Path, help="also write the rows and verdicts as JSON")
    parser.add_argument("--quiet", action="store_true", help="print only the final table and verdict")
    args = parser.parse_args(argv)
    args.train_args = extra
    if args.epochs < 1 or args.images < 1 or args.workers < 0 or args.save_every < 1 or args.display_every < 1:
        parser.error("--epochs, --images, --save_every and --display_every must be >= 1, --workers >= 0")

    work = args.out or Path(tempfile.mkdtemp(prefix="soak_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rows, status, final = run(args, work)
        run_dir = work / "checkpoints" / "soak"
        if args.quiet and rows:
            print("\n".join([format_row(rows[0], header=True), *(format_row(r) for r in rows[1:])]))
        lines = report(rows, final, run_dir)
        print("\n".join(lines))
        if args.json:
            data = {
                "rows": rows,
                "final_disk": asdict(final),
                "verdicts": [asdict(v) for v in verdicts(rows)],
                "status": status,
            }
            args.json.write_text(json.dumps(data, indent=2) + "\n")
        if status != 0:
            tail = (work / "train.err").read_text(errors="replace").strip().splitlines()[-5:]
            print(f"soak.py: train.py exited with status {status}:\n" + "\n".join(tail), file=sys.stderr)
            return 1
        return 0
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
