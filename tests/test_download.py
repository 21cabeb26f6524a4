"""scripts/download_cyclegan_dataset.sh: fetch, safe extraction, clear errors (no internet used:
archives are served from file:// URLs and a closed loopback port)."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "download_cyclegan_dataset.sh"


def run(args: list[str], cwd: Path, url: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "CYCLEGAN_DATASETS_URL": url}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def make_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_downloads_and_renames_into_datasets(tmp_path: Path) -> None:
    server = tmp_path / "server"
    server.mkdir()
    make_zip(server / "mini.zip", {"mini/trainA/1.jpg": b"a", "mini/trainB/1.jpg": b"b", "mini/testA/2.jpg": b"c"})
    result = run(["mini"], tmp_path, server.as_uri())
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "datasets/mini/trainA/1.jpg").read_bytes() == b"a"
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == ["mini"]  # no temporary leftovers
    again = run(["mini"], tmp_path, server.as_uri())
    assert again.returncode == 0 and "already exists" in again.stdout


def test_refuses_archives_that_escape(tmp_path: Path) -> None:
    server = tmp_path / "server"
    server.mkdir()
    make_zip(server / "maps.zip", {"maps/trainA/1.jpg": b"a", "../../evil.txt": b"x"})
    result = run(["maps"], tmp_path, server.as_uri())
    assert result.returncode == 1 and "unsafe path in archive: ../../evil.txt" in result.stderr
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()
    assert list((tmp_path / "datasets").iterdir()) == []


def test_clear_errors_without_network_and_for_bad_names(tmp_path: Path) -> None:
    result = run(["horse2zebra"], tmp_path, "http://127.0.0.1:9")  # nothing listens on the discard port
    assert result.returncode == 1
    assert result.stderr.startswith("error: could not download http://127.0.0.1:9/horse2zebra.zip")
    assert "Traceback" not in result.stderr and list((tmp_path / "datasets").iterdir()) == []
    bad = run(["horse2zebras"], tmp_path, "http://127.0.0.1:9")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    cityscapes = run(["cityscapes"], tmp_path, "http://127.0.0.1:9")
    assert cityscapes.returncode == 1 and "licence" in cityscapes.stderr
