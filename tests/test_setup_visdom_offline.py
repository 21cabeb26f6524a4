"""The offline asset setup for visdom's server: it reads visdom's own download list and maps every
entry to an npm package at the same version. These tests need no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import setup_visdom_offline as setup


def test_every_visdom_asset_maps_to_a_pinned_npm_file(tmp_path: Path):
    assets = setup.visdom_assets(tmp_path)
    # visdom 0.2.4: 21 files from its ext_files list + the 8 MathJax files it names
    assert len(assets) == 29
    assert len({a.dest for a in assets}) == len(assets)
    for asset in assets:
        name, _, version = asset.package.rpartition("@")
        assert name and version[0].isdigit(), asset
        assert asset.dest.is_relative_to(tmp_path / "static")
    by_name = {a.dest.relative_to(tmp_path / "static").as_posix(): a for a in assets}
    assert by_name["js/plotly-plotly.min.js"].package == "plotly.js-dist-min@2.11.1"
    assert by_name["js/d3.v3.min.js"].package == "d3@3.5.17"
    assert by_name["js/mathjax/2.7.5/MathJax.js"].path_in_package == "MathJax.js"
    assert by_name["js/mathjax/2.7.5/config/Safe.js"].package == "mathjax@2.7.5"
    # the '#fragment' stays in visdom's file name, not in the package path
    svg = by_name["fonts/glyphicons-halflings-regular.svg#glyphicons_halflingsregular"]
    assert svg.path_in_package == "dist/fonts/glyphicons-halflings-regular.svg"
    assert by_name["fonts/classnames"].path_in_package == ""  # unpkg serves package.json's main


def test_missing_npm_is_one_clear_error(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(setup.shutil, "which", lambda name: None)
    assert setup.main(["--install-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: npm not found") and "\n" not in err
    assert not (tmp_path / "static" / "version.built").exists()


def test_nothing_to_do_when_all_files_present(tmp_path: Path, monkeypatch):
    for asset in setup.visdom_assets(tmp_path):
        asset.dest.parent.mkdir(parents=True, exist_ok=True)
        asset.dest.write_text("x")
    (tmp_path / "static" / "version.built").write_text(setup.visdom_version())

    def no_npm(*args, **kwargs):
        pytest.fail("npm must not run when every file is present")

    monkeypatch.setattr(setup, "_npm_pack", no_npm)
    messages: list[str] = []
    assert setup.ensure_visdom_assets(tmp_path, log=messages.append) == []
    assert "nothing to do" in messages[0]
