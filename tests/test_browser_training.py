"""Real training and testing viewed in real headless Chromium: the visdom page during training,
and the results page of test.py."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

import test as test_script
import train
from tests.conftest import TINY

LABELS = ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"]
LOSSES = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]


def window_js(body: str) -> str:
    return f"""(title) => {{
        const w = Array.from(document.querySelectorAll('.window'))
            .find(w => w.querySelector('.bar').textContent.includes(title));
        {body}
    }}"""


@pytest.mark.browser
def test_visdom_shows_a_real_training_run(page, visdom_server, free_port, tiny_dataset, tmp_path, artifacts_dir):
    visdom_server(free_port)
    iters = 6
    args = [
        "--dataroot",
        str(tiny_dataset),
        "--name",
        "live",
        "--checkpoints_dir",
        str(tmp_path / "ck"),
        *TINY,
        "--display_id",
        "1",
        "--display_port",
        str(free_port),
        "--display_server",
        "http://127.0.0.1",
        "--display_freq",
        "3",
        "--print_freq",
        "1",
        "--max_iters",
        str(iters),
        "--seed",
        "0",
    ]
    assert train.main(args) == 0

    page.goto(f"http://127.0.0.1:{free_port}/env/live")
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2")
    page.wait_for_function("() => document.querySelectorAll('.window img').length >= 8")
    images = page.evaluate(
        window_js("""return {title: w.querySelector('.bar').textContent,
            loaded: Array.from(w.querySelectorAll('img')).map(i => i.complete && i.naturalWidth > 0),
            labels: Array.from(w.querySelectorAll('td span')).map(s => s.textContent)};"""),
        "images (epoch",
    )
    assert f"iteration {iters}" in images["title"]  # the last display step
    assert images["loaded"] == [True] * 8 and images["labels"] == LABELS  # the model's order: rows A, B
    curves = page.evaluate(
        window_js("return w.querySelector('.js-plotly-plot').data.map(t => ({name: t.name, x: t.x}));"),
        "loss over time",
    )
    assert [c["name"] for c in curves] == LOSSES
    assert all(c["x"] == list(range(1, iters + 1)) for c in curves)  # one point per logged iteration
    options = page.locator(".window pre").first.inner_text()
    assert "display_port" in options and "Options" in options
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts_dir / "visdom_training.png"), full_page=True)


@pytest.mark.browser
def test_results_page_of_test_py_loads_every_image(page, tiny_dataset, tmp_path, artifacts_dir):
    common = ["--dataroot", str(tiny_dataset), "--name", "r", "--checkpoints_dir", str(tmp_path / "ck")]
    assert train.main([*common, *TINY, "--max_iters", "2", "--seed", "0"]) == 0
    assert test_script.main([*common, "--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1"]) == 0
    index = tmp_path / "res/r/test_latest/index.html"
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    state = page.evaluate("""() => ({
        images: Array.from(document.images).map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0})),
        links: Array.from(document.querySelectorAll('a')).map(a => a.href)})""")
    assert len(state["images"]) == 3 * 3 + 2 * 3  # testA x (real_A, fake_B, rec_A) + testB x 3
    broken = [i["src"] for i in state["images"] if not i["ok"]]
    assert not broken, f"images that did not load: {broken}"
    missing = [link for link in state["links"] if not Path(unquote(urlparse(link).path)).is_file()]
    assert not missing and len(state["links"]) == len(state["images"])
    page.screenshot(path=str(artifacts_dir / "results_page.png"), full_page=True)
