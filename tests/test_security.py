"""Security (issue 14, part 6): what a stranger's checkpoint, dataset archive, file name or run
name can make this code do.

* An ``ast`` audit of every tracked ``.py`` file: ``torch.load`` only with ``weights_only=True``
  (a literal), no ``shell=`` other than a literal False, no ``os.system``/``os.popen``, no
  ``pickle``/``marshal``/``dill`` loading, no ``eval``/``exec``, no ``yaml.load`` without a safe
  loader, no ``numpy.load(allow_pickle=True)``. The checker is shown catching planted examples.
* Archive sizes (util/download.py ``ArchiveLimits``): a claim over the limit, a decompression
  bomb (tar.gz and zip) and an archive bigger than the free space of a real (tmpfs) disk are
  refused with one line before a byte is written. (Escaping paths, links and devices, and
  downloads renamed only when complete, are proven in tests/test_download.py; the one case it
  lacked, a SIGKILL mid-download, is at the end of this file.)
* visdom on loopback: the servers this project starts (``make visdom``, scripts/start_visdom.sh,
  the tests' fixture) listen on 127.0.0.1 only, read from /proc/net/tcp{,6}; the client's
  default server is localhost.
* HTML escaping, in real Chromium: an image named ``<img src=x onerror=alert(1)>.png`` and a run
  name holding markup render as text in test.py's results page, the training page and the visdom
  panes: no dialog, no event-handler attribute, no ``<img src=x>``, the literal name visible; a
  file name with quotes stays inside its attribute. A control page with the same names written
  raw shows the check catching them.
"""

from __future__ import annotations

import ast
import gzip
import io
import os
import shutil
import socket
import struct
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# ---- the source audit ----------------------------------------------------------------------------

# module -> functions that run code or unpickle data they are given (called as module.fn, or imported
# by name from the module)
FORBIDDEN = {
    "os": {"system", "popen", "execl", "execle", "execlp", "execv", "execve", "execvp", "spawnl", "spawnv"},
    "pickle": {"load", "loads", "Unpickler"},
    "cPickle": {"load", "loads", "Unpickler"},
    "_pickle": {"load", "loads", "Unpickler"},
    "dill": {"load", "loads"},
    "marshal": {"load", "loads"},
    "shelve": {"open"},
    "yaml": {"unsafe_load", "unsafe_load_all", "full_load", "full_load_all"},
}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader"}


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_literal(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


class _Auditor(ast.NodeVisitor):
    """Collects ``(line, message)`` for each unsafe call in one module."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []
        self.aliases: dict[str, str] = {}  # local name -> "module.function" (from-imports, module aliases)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:  # import numpy as np: np.load is numpy.load
                self.aliases[alias.asname] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def _resolve(self, func: ast.expr) -> str | None:
        name = _dotted(func)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        if head in self.aliases:
            return self.aliases[head] + (f".{rest}" if rest else "")
        return name

    def visit_Call(self, node: ast.Call) -> None:
        name = self._resolve(node.func) or ""
        module, _, function = name.rpartition(".")
        if name == "torch.load" and not _is_literal(_keyword(node, "weights_only"), True):
            self.found.append((node.lineno, "torch.load without weights_only=True"))
        elif name in ("eval", "exec") and isinstance(node.func, ast.Name):
            self.found.append((node.lineno, f"{name}() runs arbitrary code"))
        elif module in FORBIDDEN and function in FORBIDDEN[module]:
            self.found.append((node.lineno, f"{name}() runs code or unpickles"))
        elif name in ("yaml.load", "yaml.load_all"):
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if (_dotted(loader) or "").rpartition(".")[2] not in SAFE_YAML_LOADERS:
                self.found.append((node.lineno, f"{name} without a SafeLoader (use yaml.safe_load)"))
        elif name == "numpy.load" and _keyword(node, "allow_pickle") is not None:
            if not _is_literal(_keyword(node, "allow_pickle"), False):
                self.found.append((node.lineno, "numpy.load with allow_pickle"))
        shell = _keyword(node, "shell")
        if shell is not None and not _is_literal(shell, False):
            self.found.append((node.lineno, "shell= other than False (a command string through a shell)"))
        self.generic_visit(node)


def audit_source(text: str, filename: str = "<string>") -> list[str]:
    """``file:line: message`` for each unsafe call in the Python source ``text``."""
    auditor = _Auditor()
    auditor.visit(ast.parse(text, filename))
    return [f"{filename}:{line}: {message}" for line, message in sorted(auditor.found)]


def tracked_python_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


# Deliberate unsafe calls, each with the reason it must stay: (file, message) -> why.
DELIBERATE = {
    ("tests/test_bad_inputs.py", "pickle.loads() runs code or unpickles"): (
        "the pickled-code checkpoint test first shows its payload is live (plain unpickling runs it), "
        "so the later check that weights_only refused it means something"
    ),
}


def test_no_tracked_python_file_loads_unsafely_or_runs_a_shell() -> None:
    files = tracked_python_files()
    assert len(files) > 100 and "util/download.py" in files  # the audit sees the whole repository
    hits = [hit for name in files for hit in audit_source((REPO_ROOT / name).read_text(), name)]
    allowed = [hit for hit in hits if (hit.split(":")[0], hit.split(": ", 1)[1]) in DELIBERATE]
    offenders = [hit for hit in hits if hit not in allowed]
    assert offenders == [], "unsafe calls:\n" + "\n".join(offenders)
    assert len(allowed) == len(DELIBERATE), f"a deliberate exception is gone: drop it from DELIBERATE ({allowed})"


PLANTED_BAD = {
    "torch.load('x.pt')": "torch.load without weights_only=True",
    "torch.load(f, map_location='cpu', weights_only=False)": "torch.load without weights_only=True",
    "torch.load(f, weights_only=flag)": "torch.load without weights_only=True",
    "from torch import load\nload(f)": "torch.load without weights_only=True",
    "import torch as T\nT.load(f)": "torch.load without weights_only=True",
    "subprocess.run('ls ' + d, shell=True)": "shell= other than False",
    "subprocess.Popen(cmd, shell=use_shell)": "shell= other than False",
    "os.system('rm -rf ' + d)": "os.system() runs code",
    "from os import popen\npopen('ls')": "os.popen() runs code",
    "pickle.load(open(p, 'rb'))": "pickle.load() runs code",
    "import pickle as pk\npk.loads(b)": "pickle.loads() runs code",
    "eval(text)": "eval() runs arbitrary code",
    "exec(code, {})": "exec() runs arbitrary code",
    "yaml.load(f)": "yaml.load without a SafeLoader",
    "yaml.load(f, Loader=yaml.FullLoader)": "yaml.load without a SafeLoader",
    "yaml.unsafe_load(f)": "yaml.unsafe_load() runs code",
    "np.load(p, allow_pickle=True)": "numpy.load with allow_pickle",
}

PLANTED_GOOD = [
    "torch.load(f, map_location='cpu', weights_only=True)",
    "subprocess.run(['ls', d], shell=False, check=True)",
    "model.eval()\nnet.train().eval()",
    "yaml.safe_load(f)\nyaml.load(f, Loader=yaml.SafeLoader)\nyaml.load(f, yaml.CSafeLoader)",
    "np.load(p)\nnp.load(p, allow_pickle=False)",
    "json.loads(s)\nliteral_eval(s)\nos.path.join(a, b)",
]


@pytest.mark.parametrize("source", sorted(PLANTED_BAD))
def test_audit_catches_a_planted_unsafe_call(source: str) -> None:
    found = audit_source("import os, pickle, subprocess, yaml, torch\nimport numpy as np\n" + source, "planted.py")
    assert len(found) == 1 and found[0].startswith(f"planted.py:{2 + source.count(chr(10)) + 1}: ")
    assert PLANTED_BAD[source] in found[0]


def test_audit_passes_the_safe_forms() -> None:
    assert audit_source("\n".join(PLANTED_GOOD)) == []


# ---- archive sizes -------------------------------------------------------------------------------

MiB = 1 << 20
ZEROS_MIB_GZ = gzip.compress(b"\0" * MiB, compresslevel=9)  # ~1 KB: one gzip member of 1 MiB of zeros


def tar_gz_bomb(name: str, mib: int, claim: int | None = None) -> bytes:
    """A real .tar.gz whose one member is ``mib`` MiB of zeros (its header may ``claim`` another size),
    built in no time: gzip streams may be concatenated, so the same 1 KB member repeats."""
    info = tarfile.TarInfo(name)
    info.size = mib * MiB if claim is None else claim
    header = gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT))
    return header + ZEROS_MIB_GZ * mib + gzip.compress(b"\0" * 1024)  # data, then the end-of-archive blocks


def zip_bomb(path: Path, name: str, mib: int) -> Path:
    """A real zip of ``mib`` MiB of zeros in one member (deflate: ~1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open(name, "w") as member:
        for _ in range(mib):
            member.write(b"\0" * MiB)
    return path


def test_tar_gz_bomb_is_what_it_says() -> None:
    """The helper builds a valid archive that really unpacks to its size (so the refusals below are
    of real bombs, not of broken files)."""
    data = tar_gz_bomb("x/zeros.bin", 3)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        (member,) = archive.getmembers()
        content = archive.extractfile(member).read()
    assert member.size == len(content) == 3 * MiB and content.count(0) == 3 * MiB and len(data) < 5000


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_decompression_bomb_is_refused_before_anything_is_written(kind: str, tmp_path: Path) -> None:
    from util.download import DownloadError, unpack

    archive = tmp_path / f"facades.{kind}"
    if kind == "zip":
        zip_bomb(archive, "facades/train/zeros.bin", 300)
    else:
        archive.write_bytes(tar_gz_bomb("facades/train/zeros.bin", 300))
    packed = archive.stat().st_size
    datasets = tmp_path / "datasets"
    with pytest.raises(DownloadError) as error:
        unpack(archive, datasets / "facades", "facades")
    assert str(error.value) == (
        f"facades.{kind} claims 300.0 MiB unpacked from {packed / MiB:.1f} MiB (over 100:1): a decompression bomb, "
        "not image data; nothing was unpacked"
    )
    assert list(datasets.iterdir()) == [] and not archive.exists()  # a bad archive is deleted, nothing is left


def test_archive_claiming_more_than_the_limit_is_refused_at_its_first_header(tmp_path: Path) -> None:
    """A header claiming 100 GiB in front of 1 MiB of data: refused on the claim alone (reading on
    would mean decompressing all of it, or failing only after the disk is full)."""
    from util.download import DownloadError, unpack

    archive = tmp_path / "maps.tar.gz"
    archive.write_bytes(tar_gz_bomb("maps/train/huge.bin", 1, claim=100 << 30))
    with pytest.raises(DownloadError) as error:
        unpack(archive, tmp_path / "datasets/maps", "maps")
    assert str(error.value) == (
        "maps.tar.gz claims more than 64.0 GiB unpacked (100.0 GiB up to maps/train/huge.bin), over the limit for "
        "a dataset; nothing was unpacked"
    )
    assert list((tmp_path / "datasets").iterdir()) == []


def test_limits_are_on_the_sum_of_members_and_their_count(tmp_path: Path) -> None:
    """Many members that are each small but together too many bytes, or too many members: the
    sums are what count (smaller limits than the defaults, so the test stays small)."""
    from util.download import ArchiveLimits, DownloadError, unpack

    archive = tmp_path / "mini.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(8):
            zf.writestr(f"mini/trainA/{i}.png", os.urandom(MiB))  # incompressible: ratio ~1
    with pytest.raises(
        DownloadError, match=r"^mini\.zip claims more than 5\.0 MiB unpacked \(6\.0 MiB up to mini/trainA/5\.png\)"
    ):
        unpack(archive, tmp_path / "d" / "mini", "mini", ArchiveLimits(max_bytes=5 * MiB + 1))
    assert not archive.exists()
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(8):
            zf.writestr(f"mini/trainA/{i}.png", b"x")
    with pytest.raises(DownloadError, match=r"^mini\.zip holds more than 5 members; nothing was unpacked$"):
        unpack(archive, tmp_path / "d" / "mini", "mini", ArchiveLimits(max_members=5))
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(8):
            zf.writestr(f"mini/trainA/{i}.png", b"x")
    assert unpack(archive, tmp_path / "d" / "mini", "mini").is_dir()  # the defaults let it through
    assert sorted(p.name for p in (tmp_path / "d/mini/trainA").iterdir()) == [f"{i}.png" for i in range(8)]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 3 MiB tmpfs (we run as root, here and in CI), unmounted after the test."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True, capture_output=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True, capture_output=True)


@pytest.mark.parametrize("python", [None, *([str(BARE)] if (BARE := Path("/usr/bin/python3")).is_file() else [])])
def test_archive_bigger_than_the_free_space_is_kept_unpacked_later(python, small_disk: Path, server) -> None:
    """The download script on a real 3 MiB disk: a 2 MiB archive (incompressible images) arrives,
    then does not fit unpacked; the refusal comes before a byte is written, the archive is kept,
    and once there is room the same command unpacks it without downloading again. Run with the
    venv's Python and with a bare python3 (no torch, no tarfile data filter)."""
    archive = tarfile_bytes({f"night2day/train/{i}.jpg": os.urandom(MiB // 2) for i in range(4)})
    server.files["night2day.tar.gz"] = archive
    env = {"PATH": "/usr/bin:/bin", "PIX2PIX_DATASETS_URL": server.url, **({"PYTHON": python} if python else {})}
    command = ["bash", str(REPO_ROOT / "scripts/download_pix2pix_dataset.sh"), "night2day"]
    command += ["--datasets_dir", str(small_disk)]

    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 1 and first.stderr.count("\n") == 1, first.stderr
    assert first.stderr == (
        f"error: night2day.tar.gz unpacks to 2.0 MiB but only 1.0 MiB is free in {small_disk}; free some space "
        "and run the same command again (the archive is kept)\n"
    )
    assert sorted(p.name for p in small_disk.iterdir()) == ["night2day.tar.gz"]  # no partial dataset, no temp
    assert (small_disk / "night2day.tar.gz").read_bytes() == archive
    used = shutil.disk_usage(small_disk).used
    assert used < len(archive) + 64 * 1024  # nothing else was ever written there

    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith(f"unpacking {small_disk / 'night2day.tar.gz'} (downloaded before)\n")
    assert len(server.requests) == 1  # the archive came once
    assert sorted(p.name for p in (small_disk / "night2day/train").iterdir()) == [f"{i}.jpg" for i in range(4)]
    assert sorted(p.name for p in small_disk.iterdir()) == ["night2day"]


def tarfile_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# ---- visdom on loopback --------------------------------------------------------------------------


def listening_addresses(port: int) -> list[str]:
    """The local addresses of the TCP sockets in LISTEN state on ``port``, from /proc/net/tcp and
    /proc/net/tcp6 (what ``ss -ltn`` reads), as IP strings."""
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A: TCP_LISTEN
                continue
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(struct.pack("<I", struct.unpack(">I", raw[i : i + 4])[0]) for i in range(0, len(raw), 4))
            found.append(socket.inet_ntop(family, raw))
    return found


def is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1")


def test_listening_addresses_reads_proc_correctly(free_port: int) -> None:
    """The reader itself: a socket on all interfaces and one on loopback are told apart."""
    with socket.socket() as everywhere, socket.socket(socket.AF_INET6) as loopback6:
        everywhere.bind(("0.0.0.0", free_port))
        everywhere.listen()
        loopback6.bind(("::1", free_port))
        loopback6.listen()
        assert sorted(listening_addresses(free_port)) == ["0.0.0.0", "::1"]
    assert listening_addresses(free_port) == []


def test_make_visdom_listens_on_loopback_only(visdom_assets, free_port: int, tmp_path: Path) -> None:
    """``make visdom`` (scripts/start_visdom.sh underneath) as a user runs it; ``-o`` keeps make from
    rebuilding the shared virtualenv. Its listening socket is on 127.0.0.1 and nowhere else."""
    env = {**os.environ, "VISDOM_RUN_DIR": str(tmp_path / "run")}
    make = ["make", "-C", str(REPO_ROOT), "-o", ".venv/.installed", f"VISDOM_PORT={free_port}"]
    started = subprocess.run([*make, "visdom"], env=env, capture_output=True, text=True, timeout=180)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        pid = int((tmp_path / "run" / f"visdom-{free_port}.pid").read_text())
        assert "visdom.server" in Path(f"/proc/{pid}/cmdline").read_text()
        assert listening_addresses(free_port) == ["127.0.0.1"]
    finally:
        stopped = subprocess.run([*make, "visdom-stop"], env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and listening_addresses(free_port) == []


def test_the_tests_visdom_server_listens_on_loopback_only(visdom_server, free_port: int) -> None:
    visdom_server(free_port)
    assert listening_addresses(free_port) == ["127.0.0.1"]


def test_the_client_defaults_to_a_server_on_this_machine(tiny_dataset: Path) -> None:
    """train.py's --display_server default, and the backend's, name localhost, which resolves to
    loopback addresses only (the live display never goes to another machine unless asked)."""
    import inspect

    from monitor.visdom_backend import VisdomBackend
    from options import parse_options

    opt = parse_options(["--dataroot", str(tiny_dataset)], prog="train.py")
    assert opt.display_server == "http://localhost"
    assert inspect.signature(VisdomBackend).parameters["server"].default == "http://localhost"
    resolved = {info[4][0] for info in socket.getaddrinfo("localhost", 8097, type=socket.SOCK_STREAM)}
    assert resolved and all(is_loopback(address) for address in resolved), resolved


# ---- HTML escaping, in a real browser ------------------------------------------------------------

EVIL_FILE = "<img src=x onerror=alert(1)>"  # an image file name (".png" added); no "/": it is a file
QUOTE_FILE = 'q" onerror="alert(4)" x="\''  # breaks out of a quoted attribute if unescaped
EVIL_NAME = "<svg onload=alert(2)><img src=x onerror=alert(3)>"  # a run name: also a folder name

INSPECT_JS = """() => ({
    handlers: Array.from(document.querySelectorAll('*')).flatMap(e => Array.from(e.attributes)
        .filter(a => a.name.startsWith('on')).map(a => e.tagName.toLowerCase() + '[' + a.name + ']')),
    src_x: Array.from(document.querySelectorAll('img')).filter(i => i.getAttribute('src') === 'x').length,
    text: document.body.innerText,
    svg_text: Array.from(document.querySelectorAll('svg text')).map(t => t.textContent),
    title: document.title,
})"""


def watch_dialogs(page) -> list[str]:
    """Every alert/confirm/prompt the page opens (dismissed at once, so the page never blocks)."""
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return dialogs


def inspect_page(page, dialogs: list[str]) -> dict:
    """The page's markup-injection evidence, after giving a failed ``src=x`` time to fire onerror."""
    page.wait_for_load_state("load")
    page.wait_for_timeout(500)
    return {**page.evaluate(INSPECT_JS), "dialogs": list(dialogs)}


@pytest.mark.browser
def test_the_browser_check_catches_unescaped_markup(page, tmp_path: Path) -> None:
    """The control: the same file name written raw into a page fires its handler in this Chromium,
    and the inspection sees it (so the passes below mean escaping, not a blind check)."""
    raw = tmp_path / "raw.html"
    raw.write_text(
        f"<html><body><p>{EVIL_FILE}.png</p><p>{EVIL_NAME}</p><img src='x.png' alt=\"{QUOTE_FILE}\"></body></html>"
    )
    dialogs = watch_dialogs(page)
    page.goto(raw.as_uri())
    state = inspect_page(page, dialogs)
    assert sorted(state["dialogs"]) == ["1", "2", "3", "4"]
    assert state["src_x"] == 2 and "svg[onload]" in state["handlers"]
    assert state["handlers"].count("img[onerror]") == 3  # two from the tags, one from the attribute break-out
    assert EVIL_FILE not in state["text"]


def assert_inert(state: dict, *literals: str) -> None:
    assert state["dialogs"] == [], f"markup ran: {state['dialogs']}"
    assert state["handlers"] == [] and state["src_x"] == 0, state
    for literal in literals:
        assert literal in state["text"], f"{literal!r} is not shown as text"


@pytest.mark.browser
def test_results_page_shows_markup_in_names_as_text(page, tmp_path: Path) -> None:
    """test.py's results/<name>/test_latest/index.html for an image named like an <img> tag, from a
    run whose name is markup: every label is text, the page title too, and every image loads."""
    import test as test_script
    import train
    from tests.conftest import TINY, write_images

    root = tmp_path / "data"
    for folder, seed in (("trainA", 1), ("trainB", 2), ("testB", 4)):
        write_images(root / folder, 2, seed=seed)
    evil, quote = write_images(root / "testA", 2, seed=3)
    evil.rename(evil.with_name(f"{EVIL_FILE}.png"))
    quote.rename(quote.with_name(f"{QUOTE_FILE}.png"))
    common = ["--dataroot", str(root), "--name", EVIL_NAME, "--checkpoints_dir", str(tmp_path / "ck")]
    assert train.main([*common, *TINY, "--max_iters", "1", "--seed", "0"]) == 0
    assert test_script.main([*common, "--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1"]) == 0
    index = tmp_path / "res" / EVIL_NAME / "test_latest" / "index.html"
    assert (index.parent / "images" / f"{EVIL_FILE}_fake_B.png").is_file()

    dialogs = watch_dialogs(page)
    page.goto(index.as_uri())
    state = inspect_page(page, dialogs)
    assert_inert(state, f"{EVIL_FILE}_real_A", f"{EVIL_FILE}_fake_B", f"{EVIL_FILE}_rec_A", f"{QUOTE_FILE}_fake_B")
    assert state["title"] == f"{EVIL_NAME}: test, epoch latest"
    loaded = page.evaluate("() => Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    assert loaded == [True] * 12  # testA and testB: 2 images each, 3 labels each; the quoted srcs resolve
    alts = page.evaluate("() => Array.from(document.images).map(i => i.alt)")
    assert f"{QUOTE_FILE}_fake_B" in alts  # the whole name stayed inside the attribute


@pytest.mark.browser
def test_training_page_and_visdom_show_markup_in_the_run_name_as_text(
    page, visdom_server, free_port: int, tiny_dataset: Path, tmp_path: Path
) -> None:
    """A run named with markup, trained with the HTML page and a real visdom server: the training page
    (checkpoints/<name>/web/index.html) and the visdom env (window titles, the options pane, the
    plots' titles) show the name as text."""
    import train
    from tests.conftest import TINY

    visdom_server(free_port)
    args = ["--dataroot", str(tiny_dataset), "--name", EVIL_NAME, "--checkpoints_dir", str(tmp_path / "ck"), *TINY]
    args += ["--display_id", "1", "--display_port", str(free_port), "--display_server", "http://127.0.0.1"]
    args += ["--display_env", "security", "--display_freq", "1", "--update_html_freq", "1", "--max_iters", "2"]
    assert train.main(args) == 0

    dialogs = watch_dialogs(page)
    page.goto((tmp_path / "ck" / EVIL_NAME / "web" / "index.html").as_uri())
    state = inspect_page(page, dialogs)
    assert_inert(state, f"Experiment name = {EVIL_NAME}")
    assert state["title"] == f"Experiment name = {EVIL_NAME}"

    page.goto(f"http://127.0.0.1:{free_port}/env/security")
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2")
    page.wait_for_function("() => document.querySelectorAll('.window img').length >= 8")
    state = inspect_page(page, dialogs)
    assert_inert(state, f"name: {EVIL_NAME}", f"{EVIL_NAME} images (epoch 1, iteration 2)")
    assert f"{EVIL_NAME} loss over time" in state["svg_text"], state["svg_text"]


# ---- downloads become whole files only when complete ---------------------------------------------


def test_sigkill_mid_download_leaves_only_the_part_and_the_rerun_completes(server, tmp_path: Path) -> None:
    """tests/test_download.py covers short bodies, Ctrl-C, bad files and resume; this adds the kill
    nobody can catch (SIGKILL: the OOM killer, a pre-empted job): mid-transfer, the dataset never
    appears, the received bytes stay in ``.part``, and the same command finishes it."""
    files = {f"facades/train/{i}.jpg": os.urandom(50_000) for i in range(8)}
    archive = tarfile_bytes(files)
    server.files["facades.tar.gz"] = archive
    server.stall_next = 150_000
    datasets = tmp_path / "datasets"
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PIX2PIX_DATASETS_URL": server.url}
    command = ["bash", str(REPO_ROOT / "scripts/download_pix2pix_dataset.sh"), "facades"]
    part = datasets / "facades.tar.gz.part"
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (part.is_file() and part.stat().st_size == 150_000) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()  # bash exec'd python: this is the downloader itself
        proc.wait(timeout=30)
    finally:
        server.release.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -9
    assert sorted(p.name for p in datasets.iterdir()) == ["facades.tar.gz.part"]
    assert part.read_bytes() == archive[:150_000]
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert server.requests[-1].range == "bytes=150000-"
    assert sorted(p.name for p in datasets.iterdir()) == ["facades"]
    assert all((datasets / name).read_bytes() == data for name, data in files.items())
