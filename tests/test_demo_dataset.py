"""Tests for scripts/make_demo_dataset.py (procedural day -> night demo dataset).

Tiny datasets (32 px, a handful of images) keep the whole file to a few seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "make_demo_dataset.py"


def _load_script():
    # Loaded from its path, so the test does not depend on how pytest sets up sys.path; the
    # module must be in sys.modules before it runs, for its dataclasses.
    spec = importlib.util.spec_from_file_location("make_demo_dataset", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


demo = _load_script()

SMALL = {"seed": 0, "size": 32, "n_train": 6, "n_test": 3}
FOLDERS = ["trainA", "trainB", "testA", "testB", "testA_gt", "testB_gt"]


def _make(out: Path, force: bool = False, **overrides) -> dict:
    return demo.make_dataset(out, force=force, **{**SMALL, **overrides})


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "day2night"
    _make(out)
    return out


def test_layout_and_counts(dataset: Path) -> None:
    assert sorted(p.name for p in dataset.iterdir()) == sorted([*FOLDERS, "manifest.json"])
    expected = {"trainA": 6, "trainB": 6, "testA": 3, "testB": 3, "testA_gt": 3, "testB_gt": 3}
    for folder, n in expected.items():
        names = sorted(p.name for p in (dataset / folder).iterdir())
        assert names == [f"{i:04d}.png" for i in range(n)], folder
        for name in names:
            with Image.open(dataset / folder / name) as img:
                assert (img.format, img.mode, img.size) == ("PNG", "RGB", (32, 32))
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["counts"] == expected
    assert manifest["args"] == SMALL
    assert manifest["version"] == demo.GENERATOR_VERSION
    # no temporary or set-aside folders are left next to the dataset
    assert [p.name for p in dataset.parent.iterdir()] == [dataset.name]


def test_deterministic(dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    _make(again)
    assert _files(again) == _files(dataset)
    # ...and the seed is actually used
    other = tmp_path / "other_seed"
    _make(other, seed=1)
    assert (other / "trainA" / "0000.png").read_bytes() != (dataset / "trainA" / "0000.png").read_bytes()


def test_gt_pairs_with_test_files_by_stem(dataset: Path) -> None:
    for phase_dir, night in (("testA", True), ("testB", False)):
        stems = sorted(p.stem for p in (dataset / phase_dir).glob("*.png"))
        assert stems == sorted(p.stem for p in (dataset / f"{phase_dir}_gt").glob("*.png"))
        for i, stem in enumerate(stems):
            # the gt file is the other-domain rendering of exactly the scene behind the input file
            scene = demo.sample_scene(demo.scene_rng(0, phase_dir, i))
            src = np.asarray(demo.render(scene, not night, 32), dtype=np.float64)
            gt = np.asarray(demo.render(scene, night, 32), dtype=np.float64)
            np.testing.assert_array_equal(_read(dataset / phase_dir / f"{stem}.png"), src)
            np.testing.assert_array_equal(_read(dataset / f"{phase_dir}_gt" / f"{stem}.png"), gt)


def test_domains_differ_clearly(dataset: Path) -> None:
    day = np.stack([_read(p) for p in sorted((dataset / "trainA").glob("*.png"))])
    night = np.stack([_read(p) for p in sorted((dataset / "trainB").glob("*.png"))])
    assert night.mean() < 0.5 * day.mean()
    # top two rows are sky: light blue by day, dark at night
    for img in day:
        r, g, b = np.median(img[:2].reshape(-1, 3), axis=0)
        assert img[:2].mean() > 130 and b > r + 40, (r, g, b)
    for img in night:
        assert img[:2].mean() < 70


def _edges(img: np.ndarray) -> np.ndarray:
    gx = np.abs(np.diff(img, axis=1))[:-1].sum(-1)
    gy = np.abs(np.diff(img, axis=0))[:, :-1].sum(-1)
    return (gx + gy).ravel()


def _edge_corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(_edges(a), _edges(b))[0, 1])


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    assert len(xs) >= 4, "blob not found"
    return np.array([xs.mean(), ys.mean()])


def test_gt_shares_structure_but_not_colour(dataset: Path) -> None:
    days = [_read(p) for p in sorted((dataset / "testA").glob("*.png"))]
    nights = [_read(p) for p in sorted((dataset / "testA_gt").glob("*.png"))]
    for i, (day, night) in enumerate(zip(days, nights, strict=True)):
        # the yellow sun by day sits where the pale (unsaturated, bright) moon is at night
        sun = _centroid((day[..., 0] > 200) & (day[..., 1] > 150) & (day[..., 2] < 120))
        moon = _centroid((night.min(-1) > 170) & (night.max(-1) - night.min(-1) < 60))
        assert np.linalg.norm(sun - moon) < 1.0, (sun, moon)
        # edges (horizon, hills, houses) line up with the same scene's edges, not another's
        same = _edge_corr(day, night)
        assert same > 0.45
        for j, other in enumerate(nights):
            if j != i:
                assert same > _edge_corr(day, other) + 0.15
        assert np.abs(day - night).mean() / 255 > 0.2  # very different colours


def test_windows_light_up_at_night(dataset: Path) -> None:
    pairs = [(dataset / "testA" / p.name, p) for p in sorted((dataset / "testA_gt").glob("*.png"))]
    pairs += [(p, dataset / "testB" / p.name) for p in sorted((dataset / "testB_gt").glob("*.png"))]
    day_lum, night_lum = [], []
    for day_path, night_path in pairs:
        day, night = _read(day_path), _read(night_path)
        # warm yellow at night can only be a lit window (walls are darkened, the moon is pale)
        lit = (night[..., 0] > 150) & (night[..., 0] - night[..., 2] > 60)
        assert lit.any(), night_path
        day_lum.append(day[lit].mean())
        night_lum.append(night[lit].mean())
    # ...and the same pixels are dark window panes by day
    assert np.mean(night_lum) > np.mean(day_lum) + 40


def test_train_domains_are_unpaired_and_disjoint_from_test(dataset: Path) -> None:
    train_b = [_read(p) for p in sorted((dataset / "trainB").glob("*.png"))]
    for i in range(SMALL["n_train"]):
        night_of_a = np.asarray(demo.render(demo.sample_scene(demo.scene_rng(0, "trainA", i)), True, 32), float)
        assert min(np.abs(night_of_a - b).mean() / 255 for b in train_b) > 0.01
    train_a = [_read(p) for p in sorted((dataset / "trainA").glob("*.png"))]
    for test_img in (dataset / "testA").glob("*.png"):
        assert min(np.abs(_read(test_img) - a).mean() / 255 for a in train_a) > 0.01


def test_idempotent_and_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    argv = ["--out", str(out), "--size", "32", "--n_train", "6", "--n_test", "3"]
    assert demo.main(argv) == 0
    before, content = _mtimes(out), _files(out)
    capsys.readouterr()

    assert demo.main(argv) == 0
    assert "up to date" in capsys.readouterr().out
    assert _mtimes(out) == before

    # A manifest from another generator version is not up to date.
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "version": -1}))
    assert demo.main(argv) == 0
    assert "up to date" not in capsys.readouterr().out
    assert _files(out) == content

    # Damage a file: without --force it counts as up to date (checked by manifest), --force rewrites all.
    (out / "trainA" / "0000.png").write_bytes(b"junk")
    before = _mtimes(out)
    assert demo.main(argv) == 0
    assert (out / "trainA" / "0000.png").read_bytes() == b"junk"
    assert demo.main([*argv, "--force"]) == 0
    assert _files(out) == content
    after = _mtimes(out)
    assert all(after[name] != before[name] for name in before if name.endswith(".png"))


def test_other_arguments_regenerate(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    _make(out)
    manifest = _make(out, n_test=2)
    assert manifest["counts"]["testA_gt"] == 2
    assert len(list((out / "testA_gt").glob("*.png"))) == 2


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ds"
    real_write = demo._write_split

    def fail_on_test(root: Path, seed: int, size: int, n: int, split: str, gt: str | None = None) -> None:
        if split == "testA":
            raise KeyboardInterrupt
        real_write(root, seed, size, n, split, gt)

    monkeypatch.setattr(demo, "_write_split", fail_on_test)
    with pytest.raises(KeyboardInterrupt):
        _make(out)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_foreign_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert demo.main(["--out", str(out), "--size", "32", "--n_train", "1", "--n_test", "1", "--force"]) == 2
    assert "not a demo dataset" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_manifest_baseline_matches_files(dataset: Path) -> None:
    manifest = json.loads((dataset / "manifest.json").read_text())
    for phase in ("testA", "testB"):
        l1s, psnrs = [], []
        for src in sorted((dataset / phase).glob("*.png")):
            a, b = _read(src) / 255, _read(dataset / f"{phase}_gt" / src.name) / 255
            l1s.append(np.abs(a - b).mean())
            psnrs.append(10 * np.log10(1 / ((a - b) ** 2).mean()))
        scores = manifest["baseline_identity"][phase]
        assert scores["l1"] == pytest.approx(np.mean(l1s), abs=1e-5)
        assert scores["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-3)
        assert scores["l1"] > 0.2  # the do-nothing translation is far from the truth


def test_help_runs_as_a_script_without_pythonpath(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "--n_train" in result.stdout and "--force" in result.stdout
