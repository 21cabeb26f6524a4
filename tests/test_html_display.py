"""The training page of visuals (``checkpoints/<name>/web/index.html``): content, order, escaping,
throttling, resume, and that it renders in a real browser with every image loading."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch
from PIL import Image

from monitor.html_backend import HTMLBackend, image_filename
from util.image import tensor_to_uint8

LABELS = ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"]


def visuals(labels=LABELS, size: int = 16) -> dict[str, torch.Tensor]:
    return {label: torch.rand(2, 3, size, size) * 2 - 1 for label in labels}


def test_image_filename():
    assert image_filename(3, 400, "fake_B") == "epoch003_iter000400_fake_B.png"
    assert image_filename(12, 1234567, "<b>&") == "epoch012_iter1234567__b__.png"


def test_page_lists_steps_newest_first(tmp_path: Path):
    backend = HTMLBackend(tmp_path / "web", run_name="run", update_html_freq=1)
    for epoch, it in [(1, 400), (1, 800), (2, 1200)]:
        shown = visuals()
        backend.display(epoch, it, shown)
    html = (tmp_path / "web" / "index.html").read_text()
    headers = re.findall(r"epoch \[(\d+)\], iteration \[(\d+)\]", html)
    assert headers == [("2", "1200"), ("1", "800"), ("1", "400")]
    for label in LABELS:  # each file is the first image of the batch shown at that step, as PNG
        saved = np.asarray(Image.open(tmp_path / "web" / "images" / f"epoch002_iter001200_{label}.png").convert("RGB"))
        assert np.array_equal(saved, tensor_to_uint8(shown[label][0])), label
    # labels in the order given, newest step first
    srcs = re.findall(r'<img[^>]*src="images/([^"]+)"', html)
    assert srcs[:8] == [f"epoch002_iter001200_{label}.png" for label in LABELS]
    assert len(srcs) == 24


def test_page_updates_at_most_every_update_html_freq(tmp_path: Path):
    backend = HTMLBackend(tmp_path / "web", run_name="run", update_html_freq=1000)
    for it in range(400, 4001, 400):  # display_freq 400
        backend.display(1, it, visuals(["fake_B"]))
    saved = [s["total_iters"] for s in backend.steps]
    assert saved == [400, 1600, 2800, 4000]
    assert len(list((tmp_path / "web" / "images").glob("*.png"))) == 4


def test_labels_and_run_name_are_escaped(tmp_path: Path):
    backend = HTMLBackend(tmp_path / "web", run_name="<script>x</script>", update_html_freq=1)
    backend.display(1, 100, visuals(["<b>&", "_b_&"]))
    html = (tmp_path / "web" / "index.html").read_text()
    assert "<b>&" not in html and "<script>x" not in html
    assert "&lt;b&gt;&amp;" in html and "&lt;script&gt;x&lt;/script&gt;" in html
    # two labels that map to the same safe file name still get a file each
    files = sorted(p.name for p in (tmp_path / "web" / "images").iterdir())
    assert files == ["epoch001_iter000100__b__.png", "epoch001_iter000100__b___1.png"]


def test_resume_keeps_earlier_steps(tmp_path: Path):
    HTMLBackend(tmp_path / "web", run_name="run", update_html_freq=1).display(1, 100, visuals(["fake_B"]))
    resumed = HTMLBackend(tmp_path / "web", run_name="run", update_html_freq=1000, resume=True)
    resumed.display(2, 500, visuals(["fake_B"]))  # within update_html_freq of the saved step
    resumed.display(2, 1100, visuals(["fake_B"]))
    assert [s["total_iters"] for s in resumed.steps] == [100, 1100]
    fresh = HTMLBackend(tmp_path / "web", run_name="run", update_html_freq=1, resume=False)
    fresh.display(1, 100, visuals(["fake_B"]))
    assert [s["total_iters"] for s in fresh.steps] == [100]


def test_kept_step_html_equals_a_full_render_and_follows_a_replaced_step(tmp_path: Path):
    """Each step's HTML is rendered once and kept: the page must still be exactly what rendering
    every step afresh gives (a resumed backend, which has kept nothing), and a step displayed again
    at the same iteration (update_html_freq 0) must show its new images, not the kept ones."""
    backend = HTMLBackend(tmp_path / "web", run_name="run", update_html_freq=0)
    for it in (100, 200, 300):
        backend.display(1, it, visuals(["fake_B", "rec_A"]))
    backend.display(1, 300, visuals(["idt_A"]))  # the same step again, other visuals
    kept = (tmp_path / "web" / "index.html").read_text()
    srcs = re.findall(r'<img[^>]*src="images/([^"]+)"', kept)
    assert srcs == ["epoch001_iter000300_idt_A.png"] + [
        f"epoch001_iter{it:06d}_{label}.png" for it in (200, 100) for label in ("fake_B", "rec_A")
    ]
    afresh = HTMLBackend(tmp_path / "web", run_name="run", update_html_freq=0, resume=True)
    assert afresh.write_page().read_text() == kept


@pytest.mark.browser
def test_html_page_in_browser_loads_every_image(page, tmp_path: Path, artifacts_dir: Path):
    backend = HTMLBackend(tmp_path / "web", run_name="browser <run>", update_html_freq=1, winsize=128)
    backend.display(1, 400, visuals(size=64))
    backend.display(1, 800, visuals(["<b>&", *LABELS[1:]], size=64))

    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.goto((tmp_path / "web" / "index.html").as_uri())
    page.wait_for_load_state("load")

    images = page.evaluate("() => Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
    assert len(images) == 16
    assert all(complete and width == 64 for _, complete, width in images), images
    assert images[0][0] == "<b>&"  # newest first; the label is text, not markup
    # every link points to a file that exists
    hrefs = page.evaluate("() => Array.from(document.querySelectorAll('a')).map(a => a.href)")
    assert hrefs and all(Path(unquote(href.removeprefix("file://"))).is_file() for href in hrefs)
    assert not failed
    assert page.title() == "Experiment name = browser <run>"
    page.screenshot(path=str(artifacts_dir / "html_page.png"), full_page=True)
