"""The download scripts (scripts/download_{cyclegan,pix2pix}_{dataset,model}.sh, one Python
implementation in scripts/download.py on util/download.py): fetch, resume, safe extraction,
state-dict check, clear errors. No internet: a real HTTP server on 127.0.0.1 in a thread
(tests/http_server.py), file:// URLs, and closed loopback ports."""

from __future__ import annotations

import io
import signal
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from tests.http_server import Request
from util.catalog import SOURCES

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
SCRIPT = SCRIPTS / "download_cyclegan_dataset.sh"
# A Python without torch and without tarfile's "data" filter (added in 3.11.4): the scripts must
# still refuse bad files there, with their own checks only. Debian's python3 on this machine is one.
BARE_PYTHON = Path("/usr/bin/python3")


def run(args: list[str], cwd: Path, url: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "CYCLEGAN_DATASETS_URL": url}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def script(name: str, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``bash scripts/<name> ARGS`` in ``cwd`` with a clean environment plus ``env``."""
    full_env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )


def make_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def make_tar_gz(files: dict[str, bytes], extra: tuple[tarfile.TarInfo, ...] = ()) -> bytes:
    """A .tar.gz of regular files, then ``extra`` members (links, devices, odd paths) as given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in extra:
            archive.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def weights() -> bytes:
    """A real generator state dict as torch.save writes it (~0.5 MB)."""
    import torch

    from models.networks import define_G

    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(define_G("resnet_6blocks", 3, 3, 8, "instance").state_dict(), buffer)
    return buffer.getvalue()


def listing(folder: Path) -> list[str]:
    """Every path under ``folder`` (hidden temporary files included), relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# ---- CycleGAN datasets from file:// (the script's original tests) --------------------------------


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


# ---- names, refusals, network errors -------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(SOURCES))
def test_unknown_or_missing_name_is_one_line_listing_the_names(key: str, tmp_path: Path, server) -> None:
    source = SOURCES[key]
    result = script(source.script, ["horse2zebras"], tmp_path, **{source.url_env: server.url})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"error: invalid choice: 'horse2zebras' is not a published {source.label} "
        f"(choose from {', '.join(source.names)})\n"
    )
    missing = script(source.script, [], tmp_path, **{source.url_env: server.url})
    assert missing.returncode == 2 and missing.stderr == f"error: name a {source.label}: {', '.join(source.names)}\n"
    assert server.requests == [] and listing(tmp_path) == []


@pytest.mark.parametrize("name", ["download_cyclegan_dataset.sh", "download_pix2pix_dataset.sh"])
def test_cityscapes_is_refused_with_the_licence_explanation(name: str, tmp_path: Path, server) -> None:
    source = next(s for s in SOURCES.values() if s.script == name)
    result = script(name, ["cityscapes"], tmp_path, **{source.url_env: server.url})
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: the Cityscapes licence forbids redistribution")
    assert "https://www.cityscapes-dataset.com" in result.stderr
    assert server.requests == []  # refused before any download attempt
    assert not (tmp_path / "datasets" / "cityscapes").exists()


def test_offline_is_one_line_and_leaves_nothing(tmp_path: Path, free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}"  # a port nothing listens on: connection refused
    result = script("download_cyclegan_model.sh", ["horse2zebra"], tmp_path, CYCLEGAN_MODELS_URL=url)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: could not download {url}/horse2zebra.pth (")
    assert "Connection refused" in result.stderr and "Traceback" not in result.stderr
    assert listing(tmp_path) == []  # not even an empty checkpoints/horse2zebra_pretrained/
    dataset = script("download_pix2pix_dataset.sh", ["facades"], tmp_path, PIX2PIX_DATASETS_URL=url)
    assert dataset.returncode == 1 and dataset.stderr.startswith(f"error: could not download {url}/facades.tar.gz (")
    assert listing(tmp_path) == ["datasets"]


def test_http_404_is_one_line_and_leaves_nothing(tmp_path: Path, server) -> None:
    result = script("download_pix2pix_model.sh", ["day2night"], tmp_path, PIX2PIX_MODELS_URL=server.url)
    assert result.returncode == 1
    assert result.stderr == f"error: could not download {server.url}/day2night.pth: HTTP 404 Not Found\n"
    assert server.requests == [Request("day2night.pth", None, 404, 0)]
    assert listing(tmp_path) == []


# ---- resuming ------------------------------------------------------------------------------------


def test_interrupted_download_resumes_with_a_range_request(tmp_path: Path, server, weights: bytes) -> None:
    server.files["horse2zebra.pth"] = weights
    server.cut_next = [100_000, 150_000]  # the first two responses stop early; the third completes
    url = f"{server.url}/horse2zebra.pth"
    target = tmp_path / "checkpoints/horse2zebra_pretrained/latest_net_G.pth"
    part = target.with_name("latest_net_G.pth.part")

    def attempt() -> subprocess.CompletedProcess:
        return script("download_cyclegan_model.sh", ["horse2zebra"], tmp_path, CYCLEGAN_MODELS_URL=server.url)

    first = attempt()
    assert first.returncode == 1
    assert first.stderr == (
        f"error: download of {url} stopped after 100,000 of {len(weights):,} bytes (the server closed the "
        "connection); run the same command again to resume\n"
    )
    assert not target.exists() and part.read_bytes() == weights[:100_000]  # short: kept as .part, never final
    second = attempt()
    assert second.returncode == 1 and "stopped after 250,000 of" in second.stderr
    assert not target.exists() and part.read_bytes() == weights[:250_000]
    third = attempt()
    assert third.returncode == 0, third.stderr
    assert f"resuming {url} at byte 250,000\n" in third.stdout
    assert target.read_bytes() == weights and not part.exists()
    assert [(r.range, r.status, r.sent) for r in server.requests] == [
        (None, 200, 100_000),
        ("bytes=100000-", 206, 150_000),
        ("bytes=250000-", 206, len(weights) - 250_000),
    ]


def test_ctrl_c_keeps_the_part_and_the_next_run_resumes(tmp_path: Path, server, weights: bytes) -> None:
    server.files["zebra2horse.pth"] = weights
    server.stall_next = 200_000  # sends this much, then holds the connection open
    part = tmp_path / "checkpoints/zebra2horse_pretrained/latest_net_G.pth.part"
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "CYCLEGAN_MODELS_URL": server.url}
    command = ["bash", str(SCRIPTS / "download_cyclegan_model.sh"), "zebra2horse"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (part.is_file() and part.stat().st_size == 200_000) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # bash exec'd python: this is the downloader itself
        _, stderr = proc.communicate(timeout=30)
    finally:
        server.release.set()
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 130
    assert stderr == "interrupted; run the same command again to resume the download\n"
    assert part.read_bytes() == weights[:200_000] and not part.with_suffix("").exists()
    again = script("download_cyclegan_model.sh", ["zebra2horse"], tmp_path, CYCLEGAN_MODELS_URL=server.url)
    assert again.returncode == 0, again.stderr
    assert server.requests[-1].range == "bytes=200000-" and part.with_suffix("").read_bytes() == weights


def test_server_that_ignores_range_restarts_cleanly(tmp_path: Path, server, weights: bytes) -> None:
    server.files["horse2zebra.pth"] = weights
    server.cut_next = [100_000]
    first = script("download_cyclegan_model.sh", ["horse2zebra"], tmp_path, CYCLEGAN_MODELS_URL=server.url)
    assert first.returncode == 1
    server.ignore_range = True  # answers the resume with 200 and the whole file
    second = script("download_cyclegan_model.sh", ["horse2zebra"], tmp_path, CYCLEGAN_MODELS_URL=server.url)
    assert second.returncode == 0, second.stderr
    assert server.requests[-1] == Request("horse2zebra.pth", "bytes=100000-", 200, len(weights))
    assert "does not resume downloads (HTTP 200)" in second.stdout
    # the first 100,000 bytes were not kept in front of the full body
    assert (tmp_path / "checkpoints/horse2zebra_pretrained/latest_net_G.pth").read_bytes() == weights


def test_stale_part_longer_than_the_file_is_discarded(tmp_path: Path, server, weights: bytes) -> None:
    # e.g. left by an older, bigger version of the file: the server answers 416 to its range
    server.files["sat2map.pth"] = weights
    target = tmp_path / "checkpoints/sat2map_pretrained/latest_net_G.pth"
    target.parent.mkdir(parents=True)
    target.with_name("latest_net_G.pth.part").write_bytes(b"\0" * (len(weights) + 10))
    result = script("download_pix2pix_model.sh", ["sat2map"], tmp_path, PIX2PIX_MODELS_URL=server.url)
    assert result.returncode == 0, result.stderr
    assert [(r.range, r.status) for r in server.requests] == [(f"bytes={len(weights) + 10}-", 416), (None, 200)]
    assert target.read_bytes() == weights and listing(target.parent) == ["latest_net_G.pth"]


def test_short_archive_is_never_unpacked_and_resumes(tmp_path: Path, server) -> None:
    files = {f"facades/train/{i}.jpg": bytes([i]) * 5000 for i in range(20)}
    files["facades/test/1.jpg"] = b"t"
    archive = make_tar_gz(files)
    server.files["facades.tar.gz"] = archive
    server.cut_next = [len(archive) // 2]
    first = script("download_pix2pix_dataset.sh", ["facades"], tmp_path, PIX2PIX_DATASETS_URL=server.url)
    assert first.returncode == 1 and "run the same command again to resume" in first.stderr
    assert listing(tmp_path / "datasets") == ["facades.tar.gz.part"]
    assert (tmp_path / "datasets/facades.tar.gz.part").read_bytes() == archive[: len(archive) // 2]
    second = script("download_pix2pix_dataset.sh", ["facades"], tmp_path, PIX2PIX_DATASETS_URL=server.url)
    assert second.returncode == 0, second.stderr
    assert server.requests[-1].range == f"bytes={len(archive) // 2}-"
    assert sorted(listing(tmp_path / "datasets")) == sorted(["facades", "facades/test", "facades/train", *files])
    assert all((tmp_path / "datasets" / name).read_bytes() == data for name, data in files.items())


# ---- archives ------------------------------------------------------------------------------------


def test_pix2pix_dataset_is_unpacked_into_datasets(tmp_path: Path, server) -> None:
    files = {"maps/train/1.jpg": b"AB1", "maps/val/2.jpg": b"AB2", "maps/test/3.jpg": b"AB3"}
    server.files["maps.tar.gz"] = make_tar_gz(files)
    result = script("download_pix2pix_dataset.sh", ["maps"], tmp_path, PIX2PIX_DATASETS_URL=server.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(f"maps is in {Path('datasets/maps')} (test, train, val)\n")
    assert listing(tmp_path / "datasets") == sorted(["maps", "maps/test", "maps/train", "maps/val", *files])
    assert all((tmp_path / "datasets" / name).read_bytes() == data for name, data in files.items())


def _unsafe_member(kind: str, tmp_path: Path) -> tuple[tarfile.TarInfo, str]:
    """One bad tar member and the error it must produce."""
    if kind == "absolute":
        info = tarfile.TarInfo(str(tmp_path / "evil.txt"))
        info.size = 1
        return info, f"unsafe path in archive: {info.name}"
    if kind == "dotdot":
        info = tarfile.TarInfo("facades/../../evil.txt")
        info.size = 1
        return info, f"unsafe path in archive: {info.name}"
    if kind in ("symlink", "hardlink"):
        info = tarfile.TarInfo("facades/train/link.jpg")
        info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        info.linkname = str(tmp_path / "evil.txt")
        return info, f"archive holds a link: {info.name} -> {info.linkname}"
    info = tarfile.TarInfo("facades/train/null")
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info, f"archive holds a device or special file: {info.name}"


PYTHONS = [None, *([str(BARE_PYTHON)] if BARE_PYTHON.is_file() else [])]  # None: the repo's .venv


@pytest.mark.parametrize("python", PYTHONS, ids=lambda p: "venv" if p is None else "bare-python3")
@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "hardlink", "device"])
def test_unsafe_tar_members_are_refused_and_nothing_is_extracted(kind: str, python, tmp_path: Path, server) -> None:
    bad, message = _unsafe_member(kind, tmp_path)
    # a safe member first: an extractor that works member by member would already have written it
    server.files["facades.tar.gz"] = make_tar_gz({"facades/train/1.jpg": b"ok"}, (bad,))
    env = {"PIX2PIX_DATASETS_URL": server.url, **({"PYTHON": python} if python else {})}
    result = script("download_pix2pix_dataset.sh", ["facades"], tmp_path, **env)
    assert result.returncode == 1 and result.stderr == f"error: {message}\n"
    assert listing(tmp_path / "datasets") == []  # no dataset, no archive, no temporary folder
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_zip_symlink_is_refused(tmp_path: Path, server) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mini/trainA/1.jpg", b"a")
        link = zipfile.ZipInfo("mini/trainA/2.jpg")
        link.external_attr = (0o120777 << 16) | 0x20  # S_IFLNK: a symbolic link in unix zips
        archive.writestr(link, "/etc/passwd")
    server.files["mini.zip"] = buffer.getvalue()
    result = script("download_cyclegan_dataset.sh", ["mini"], tmp_path, CYCLEGAN_DATASETS_URL=server.url)
    assert result.returncode == 1 and result.stderr == "error: archive holds a symbolic link: mini/trainA/2.jpg\n"
    assert listing(tmp_path / "datasets") == []


def test_present_dataset_is_kept_and_force_replaces_it(tmp_path: Path, server) -> None:
    old = tmp_path / "datasets/night2day/train/old.jpg"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    server.files["night2day.tar.gz"] = make_tar_gz({"night2day/train/new.jpg": b"new"})
    kept = script("download_pix2pix_dataset.sh", ["night2day"], tmp_path, PIX2PIX_DATASETS_URL=server.url)
    assert kept.returncode == 0
    assert kept.stdout == f"{Path('datasets/night2day')} already exists; nothing to do (--force downloads it again)\n"
    assert server.requests == [] and old.read_bytes() == b"old"
    forced = script("download_pix2pix_dataset.sh", ["night2day", "--force"], tmp_path, PIX2PIX_DATASETS_URL=server.url)
    assert forced.returncode == 0, forced.stderr
    assert listing(tmp_path / "datasets") == ["night2day", "night2day/train", "night2day/train/new.jpg"]


# ---- model files ---------------------------------------------------------------------------------


def test_present_model_is_kept_and_force_downloads_again(tmp_path: Path, server, weights: bytes) -> None:
    target = tmp_path / "checkpoints/facades_label2photo_pretrained/latest_net_G.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"already here")
    server.files["facades_label2photo.pth"] = weights
    env = {"PIX2PIX_MODELS_URL": server.url}
    kept = script("download_pix2pix_model.sh", ["facades_label2photo"], tmp_path, **env)
    assert kept.returncode == 0
    assert kept.stdout == f"{target.relative_to(tmp_path)} already exists; nothing to do (--force downloads it again)\n"
    assert server.requests == [] and target.read_bytes() == b"already here"
    forced = script("download_pix2pix_model.sh", ["facades_label2photo", "--force"], tmp_path, **env)
    assert forced.returncode == 0, forced.stderr
    assert target.read_bytes() == weights and listing(target.parent) == ["latest_net_G.pth"]


HTML = b"<!DOCTYPE html>\n<html><head><title>Captive portal</title></head><body>Sign in</body></html>\n"


@pytest.mark.parametrize("python", PYTHONS, ids=lambda p: "venv" if p is None else "bare-python3")
def test_model_must_be_a_state_dict(python, tmp_path: Path, server, weights: bytes) -> None:
    """An HTML page served as a .pth (captive portal, proxy error) is refused and never becomes
    latest_net_G.pth; a real state dict passes, checked by torch.load(weights_only=True) in the venv
    and by its signature on a Python without torch, in torch's zip format and in the legacy format
    of torch < 1.6 (which older published files may use)."""
    import torch

    server.files["style_monet.pth"] = HTML
    server.files["edges2shoes.pth"] = weights
    legacy = io.BytesIO()
    torch.save(torch.load(io.BytesIO(weights), weights_only=True), legacy, _use_new_zipfile_serialization=False)
    server.files["horse2zebra.pth"] = legacy.getvalue()
    env = {
        "CYCLEGAN_MODELS_URL": server.url,
        "PIX2PIX_MODELS_URL": server.url,
        **({"PYTHON": python} if python else {}),
    }
    result = script("download_cyclegan_model.sh", ["style_monet"], tmp_path, **env)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        "error: the downloaded file is not a PyTorch state dict (it starts with '<!DOCTYPE html> <html><head><title>"
    )
    assert result.stderr.endswith("; nothing was saved\n")
    assert listing(tmp_path / "checkpoints") == ["style_monet_pretrained"]  # no latest_net_G.pth, no .part
    good = script("download_pix2pix_model.sh", ["edges2shoes"], tmp_path, **env)
    assert good.returncode == 0, good.stderr
    target = Path("checkpoints/edges2shoes_pretrained/latest_net_G.pth")
    if python is None:
        state = torch.load(io.BytesIO(weights), weights_only=True)
        values = sum(v.numel() for v in state.values())
        assert good.stdout.startswith(
            f"downloading {server.url}/edges2shoes.pth\nsaved {target} ({len(state)} tensors, {values:,} values)\n"
        )
    else:
        assert (
            f"saved {target} ({len(weights):,} bytes (torch is not installed: only the file signature was checked))"
            in good.stdout
        )
    assert (tmp_path / target).read_bytes() == weights
    old_format = script("download_cyclegan_model.sh", ["horse2zebra"], tmp_path, **env)
    assert old_format.returncode == 0, old_format.stderr
    assert (tmp_path / "checkpoints/horse2zebra_pretrained/latest_net_G.pth").read_bytes() == legacy.getvalue()


def test_pickled_module_is_refused_as_a_model(tmp_path: Path, server) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save(torch.nn.Linear(2, 2), buffer)  # a whole pickled module: weights_only refuses to unpickle it
    server.files["map2sat.pth"] = buffer.getvalue()
    result = script("download_cyclegan_model.sh", ["map2sat"], tmp_path, CYCLEGAN_MODELS_URL=server.url)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f"error: the downloaded file is not a PyTorch state dict ({len(buffer.getvalue()):,}"
    )
    assert listing(tmp_path / "checkpoints") == ["map2sat_pretrained"]


@pytest.mark.parametrize(
    ("name", "hints"),
    [
        ("night2day", ["bash scripts/download_pix2pix_dataset.sh night2day"]),
        (
            "facades",
            ["bash scripts/download_cyclegan_dataset.sh facades", "bash scripts/download_pix2pix_dataset.sh facades"],
        ),
    ],
)
def test_missing_dataroot_names_the_right_download(
    name: str, hints: list[str], tmp_path: Path, monkeypatch, capsys
) -> None:
    """train.py's error for a missing published dataset gives the script that publishes it: the pix2pix
    one for a pix2pix-only dataset, both for a name published in both layouts."""
    from options import parse_options

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        parse_options(["--dataroot", f"./datasets/{name}", "--model", "pix2pix"], prog="train.py")
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exc.value.code == 2 and error.startswith(f"train.py: error: --dataroot ./datasets/{name} does not exist")
    assert all(hint in error for hint in hints), error
