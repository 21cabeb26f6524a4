"""The visdom backend against the real visdom server: what a person sees, and what happens when
the server is down, then comes back.

The visuals are tiny synthetic tensors while the training loop is being written; later the
browser test can drive a few real training iterations instead.
"""

from __future__ import annotations

import time
import types
from pathlib import Path

import pytest
import torch
import visdom

from monitor import LogRecord, Visualizer
from monitor.html_backend import HTMLBackend
from monitor.visdom_backend import VisdomBackend

LABELS = ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"]
LOSS_NAMES = ["D_A", "G_A", "cycle_A"]


def make_visuals(size: int = 32, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Eight NCHW tensors in [-1, 1]: a horizontal ramp with noise in one channel, per label."""
    generator = torch.Generator().manual_seed(seed)
    visuals = {}
    for i, label in enumerate(LABELS):
        image = torch.linspace(-1, 1, size).view(1, 1, 1, size).expand(batch, 3, size, size).clone()
        image[:, i % 3] = torch.rand(batch, size, size, generator=generator) * 2 - 1
        visuals[label] = image
    return visuals


def make_record(step: int, every: int = 100) -> LogRecord:
    losses = {"D_A": 0.5 / step, "G_A": 1.0 + 0.1 * step, "cycle_A": 2.0 / step}
    return LogRecord(
        epoch=1,
        epoch_iter=step * every,
        total_iters=step * every,
        losses=losses,
        lr=2e-4,
        time_per_iter=0.1,
        data_time=0.01,
    )


def window_data(port: int, env: str, win: str) -> dict:
    """What the server holds for a window (asked with a separate client, as a page would)."""
    import json

    client = visdom.Visdom(port=port, env=env, use_incoming_socket=False, raise_exceptions=True)
    return json.loads(client.get_window_data(win=win, env=env))


# browser: the visdom page -----------------------------------------------------------------------


@pytest.mark.browser
def test_visdom_page_shows_images_and_curves(page, visdom_server, free_port, artifacts_dir):
    visdom_server(free_port)
    env = "browser_test"
    backend = VisdomBackend(port=free_port, env=env, ncols=4, winsize=128, run_name=env)
    assert backend.connected
    backend.show_text("options", "name: browser_test\nlr: 0.0002\nnote: <b>&</b>")
    steps = 5
    for step in range(1, steps + 1):
        backend.log(make_record(step))
        if step in (2, 4):
            backend.display(1, step * 100, make_visuals(seed=step))
    backend.log_metrics(1, steps * 100, {"fid": 80.0})

    page.goto(f"http://127.0.0.1:{free_port}/env/{env}")
    page.wait_for_function("() => document.querySelectorAll('.window').length >= 5")
    page.wait_for_function("() => document.querySelectorAll('.window img').length >= 8")
    # plotly draws asynchronously; wait until every plot has its data
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length == 3")

    images = page.evaluate(
        """(title) => {
        const w = Array.from(document.querySelectorAll('.window'))
            .find(w => w.querySelector('.bar').textContent.includes(title));
        return {
            title: w.querySelector('.bar').textContent,
            loaded: Array.from(w.querySelectorAll('img')).map(i => i.complete && i.naturalWidth),
            labels: Array.from(w.querySelectorAll('td span')).map(s => s.textContent),
        };
    }""",
        "images (epoch",
    )
    assert "iteration 400" in images["title"]  # the newer of the two display steps
    assert images["loaded"] == [32] * len(LABELS)  # 8 images, all decoded (natural size 32 px)
    assert images["labels"] == LABELS  # a visible label under each image, in order

    plot_js = """(title) => {
        const w = Array.from(document.querySelectorAll('.window'))
            .find(w => w.querySelector('.bar').textContent.includes(title));
        return w.querySelector('.js-plotly-plot').data.map(t => ({name: t.name, x: t.x, y: t.y}));
    }"""
    losses = page.evaluate(plot_js, "loss over time")
    assert [trace["name"] for trace in losses] == LOSS_NAMES
    for trace in losses:
        assert trace["x"] == [100 * s for s in range(1, steps + 1)]  # x = total_iters
        assert len(trace["y"]) == steps
    assert losses[0]["y"] == pytest.approx([0.5 / s for s in range(1, steps + 1)])
    lr = page.evaluate(plot_js, "learning rate")
    assert len(lr) == 1 and lr[0]["y"] == pytest.approx([2e-4] * steps)
    metrics = page.evaluate(plot_js, "metrics")
    assert metrics[0]["name"] == "fid" and metrics[0]["y"] == [80.0]
    # the options text is escaped, not interpreted as HTML
    assert page.locator(".window pre").first.inner_text().endswith("note: <b>&</b>")

    page.wait_for_timeout(300)  # let plotly finish its transitions for the screenshot
    page.screenshot(path=str(artifacts_dir / "visdom_page.png"), full_page=True)


# no server, then a server ------------------------------------------------------------------------


def test_no_server_warns_once_stays_fast_and_resumes(capsys, free_port, visdom_server):
    env = "outage_test"
    start = time.perf_counter()
    backend = VisdomBackend(port=free_port, env=env, run_name=env, retry_interval=0.5)
    construct_s = time.perf_counter() - start
    assert not backend.connected
    assert construct_s < 2.0  # a refused TCP connect, not visdom's 5 s socket wait

    visuals = make_visuals()
    calls = 0
    start = time.perf_counter()
    steps = 200
    for step in range(1, steps + 1):
        backend.log(make_record(step, every=10))
        calls += 1
        if step % 40 == 0:
            backend.display(1, step * 10, visuals)
            calls += 1
    per_call_ms = (time.perf_counter() - start) / calls * 1e3
    err = capsys.readouterr().err
    with capsys.disabled():  # the figure is worth seeing in the test log
        print(f"\nper-call overhead with the server down: {per_call_ms:.4f} ms over {calls} calls")
    # buffering plus at most a refused connect every retry_interval: far below 1 ms per call
    assert per_call_ms < 2.0
    warnings = [line for line in err.splitlines() if "visdom" in line]
    assert len(warnings) == 1, err
    assert "make visdom" in warnings[0] and f"scripts/start_visdom.sh {free_port}" in warnings[0]

    # the server appears; within retry_interval the backend reconnects and rebuilds the plots
    visdom_server(free_port)
    time.sleep(0.6)
    backend.log(make_record(steps + 1, every=10))
    assert backend.connected
    backend.display(1, (steps + 1) * 10, visuals)
    err = capsys.readouterr().err
    assert "WARNING" not in err and "again" in err  # one note that the display resumed

    data = window_data(free_port, env, "losses")
    traces = data["content"]["data"]
    assert [t["name"] for t in traces] == LOSS_NAMES
    # every point, including the 200 buffered during the outage: no hole in the curve
    assert [len(t["x"]) for t in traces] == [steps + 1] * len(LOSS_NAMES)
    assert traces[0]["x"] == [10 * s for s in range(1, steps + 2)]
    assert window_data(free_port, env, "images")["type"] == "text"

    # and further points are appended, not resent
    backend.log(make_record(steps + 2, every=10))
    assert len(window_data(free_port, env, "losses")["content"]["data"][0]["x"]) == steps + 2


def test_server_stopping_mid_run_warns_once(capsys, free_port, visdom_server):
    server = visdom_server(free_port)
    backend = VisdomBackend(port=free_port, env="stop_test", retry_interval=60)
    backend.log(make_record(1))
    assert backend.connected
    server.terminate()
    server.wait(timeout=10)
    for step in range(2, 50):
        backend.log(make_record(step))
        backend.display(1, step * 100, make_visuals(size=8))
    assert not backend.connected
    assert len(backend.losses.points) == 49  # still buffering for the rebuild
    lines = [line for line in capsys.readouterr().err.splitlines() if "visdom" in line]
    assert len(lines) == 1 and lines[0].startswith("WARNING")


def test_new_loss_name_rebuilds_the_plot(free_port, visdom_server):
    visdom_server(free_port)
    backend = VisdomBackend(port=free_port, env="names_test")
    backend.log(make_record(1))
    record = make_record(2)
    record.losses["idt_A"] = 0.3  # a loss that appears later (e.g. identity loss switched on)
    backend.log(record)
    traces = window_data(free_port, "names_test", "losses")["content"]["data"]
    assert [t["name"] for t in traces] == [*LOSS_NAMES, "idt_A"]
    assert traces[3]["y"] == [None, 0.3]  # missing at the first step: a gap, not a zero


def test_one_pane_per_image_with_ncols_zero(free_port, visdom_server):
    visdom_server(free_port)
    backend = VisdomBackend(port=free_port, env="ncols0", ncols=0)
    backend.display(1, 100, make_visuals(size=8))
    for label in LABELS:
        assert window_data(free_port, "ncols0", f"image_{label}")["type"] == "image"


# facade wiring -----------------------------------------------------------------------------------


def make_opt(**overrides) -> types.SimpleNamespace:
    """The option names the options layer provides (reference-compatible)."""
    opt = types.SimpleNamespace(
        name="wiring_test",
        display_id=1,
        display_server="http://localhost",
        display_port=8097,
        display_env="",
        display_ncols=4,
        display_winsize=256,
        display_freq=400,
        update_html_freq=1000,
        no_html=False,
    )
    for key, value in overrides.items():
        setattr(opt, key, value)
    return opt


def test_for_training_adds_backends_from_options(tmp_path: Path, free_port, capsys):
    viz = Visualizer.for_training(make_opt(display_port=free_port), tmp_path, resume=False)
    kinds = [type(b) for b in viz.backends]
    assert VisdomBackend in kinds and HTMLBackend in kinds
    visdom_backend = next(b for b in viz.backends if isinstance(b, VisdomBackend))
    assert visdom_backend.env == "wiring_test"  # empty display_env: the run name
    assert visdom_backend.port == free_port
    html_backend = next(b for b in viz.backends if isinstance(b, HTMLBackend))
    assert html_backend.web_dir == tmp_path / "web"
    viz.close()
    assert "no server" in capsys.readouterr().err

    viz = Visualizer.for_training(make_opt(display_id=0, no_html=True), tmp_path, resume=False)
    assert not any(isinstance(b, (VisdomBackend, HTMLBackend)) for b in viz.backends)
    viz.close()

    viz = Visualizer.for_training(make_opt(display_port=free_port, display_env="other"), tmp_path, resume=True)
    assert next(b for b in viz.backends if isinstance(b, VisdomBackend)).env == "other"
    viz.close()
