#!/usr/bin/env python3
"""Put visdom's JavaScript/CSS assets in place from the npm registry, so its server starts offline.

At start, ``python -m visdom.server`` runs ``visdom.server.build.download_scripts``, which fetches
~21 files from unpkg.com, cdn.plot.ly, d3js.org and cdnjs (MathJax) into the package's
``static/`` folder, and crashes when they cannot be reached (the MathJax step uses ``requests``
without error handling). It skips every file that already exists once ``static/version.built``
holds visdom's version. This script therefore:

1. reads visdom's own download list from the *installed* ``download_scripts`` (its source is
   parsed, not run), so file names, folders and versions are exactly the ones visdom checks;
2. maps each URL to the same file at the same version in an npm package (unpkg URLs name the
   package and version themselves; the three other CDNs are mapped in ``CDN_TO_NPM``);
3. ``npm pack``s the needed packages into a temporary folder, extracts the files and copies them
   under the names visdom uses;
4. writes ``static/version.built`` last, only when every file is present.

It targets the interpreter that runs it: ``.venv/bin/python scripts/setup_visdom_offline.py``
fills the virtualenv's visdom. Idempotent: when every file is present it does nothing.

Exit status: 0 on success (or nothing to do), 1 with a one-line error when npm is missing, the
registry is unreachable, or visdom's download list has an entry this script cannot map.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

# URLs in visdom's list that are not unpkg.com: the npm package (at the same version) holding the
# very same file. d3.v3 is d3 3.5.17 (the last 3.x), d3-selection-multi.v1 is 1.0.1 (its only
# 1.x release), plotly-2.11.1.min.js is plotly.js-dist-min 2.11.1.
CDN_TO_NPM: dict[str, tuple[str, str]] = {
    "https://cdn.plot.ly/plotly-2.11.1.min.js": ("plotly.js-dist-min@2.11.1", "plotly.min.js"),
    "http://d3js.org/d3.v3.min.js": ("d3@3.5.17", "d3.min.js"),
    "https://d3js.org/d3-selection-multi.v1.js": ("d3-selection-multi@1.0.1", "build/d3-selection-multi.js"),
}
MATHJAX_NPM = "mathjax@{version}"  # cdnjs serves the MathJax npm package's files unchanged
NPM_TIMEOUT_S = 300  # npm pack of all ~15 packages takes ~10-20 s; this only bounds a hang


class AssetError(RuntimeError):
    """The assets could not be obtained (npm missing, registry unreachable, unknown entry)."""


@dataclass(frozen=True)
class Asset:
    """One file visdom expects: where it goes and where it comes from on npm."""

    url: str  # visdom's download URL (for messages)
    dest: Path  # absolute path under visdom's install dir
    package: str  # npm spec, e.g. "jquery@3.1.1"
    path_in_package: str  # file path inside the package tarball ("" = the package's main file)


def visdom_install_dir() -> Path:
    """The installed visdom package folder of the running interpreter (what the server serves from)."""
    spec = importlib.util.find_spec("visdom")
    if spec is None or spec.origin is None:
        raise AssetError(f"visdom is not installed for {sys.executable}")
    return Path(spec.origin).parent


def visdom_version() -> str:
    import visdom

    return visdom.__version__


def _literal(node: ast.expr, names: dict[str, object]) -> object:
    """The value of a literal expression that may use ``%`` or ``+`` on strings and the names
    assigned before it (``"%sjquery@3.1.1/..." % b``); any other construct raises AssetError."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        left, right = _literal(node.left, names), _literal(node.right, names)
        if isinstance(left, str) and isinstance(right, (str, tuple)):
            return left % right if isinstance(node.op, ast.Mod) else left + str(right)
    if isinstance(node, ast.Tuple):
        return tuple(_literal(item, names) for item in node.elts)
    if isinstance(node, ast.List):
        return [_literal(item, names) for item in node.elts]
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k, names): _literal(v, names) for k, v in zip(node.keys, node.values, strict=True)}
    raise AssetError(f"visdom's download_scripts has a non-literal entry ({ast.unparse(node)}); update this script")


def _read_download_list() -> tuple[dict[str, str], str, list[str]]:
    """Evaluate the literal assignments of ``download_scripts`` (ext_files, cdnjs_url, mathjax_path).

    The function body downloads as it goes, so we cannot call it; its list is plain string
    literals and ``%`` formatting, which ``_literal`` evaluates statement by statement (no ``eval``:
    anything else in the list is an error, not code that runs).
    """
    from visdom.server import build

    tree = ast.parse(inspect.getsource(build.download_scripts))
    wanted = {"b", "bb", "ext_files", "cdnjs_url", "mathjax_path"}
    namespace: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in wanted:
                namespace[name] = _literal(node.value, namespace)
    missing = {"ext_files", "cdnjs_url", "mathjax_path"} - namespace.keys()
    if missing:
        raise AssetError(f"visdom's download_scripts changed (no {', '.join(sorted(missing))}); update this script")
    return namespace["ext_files"], namespace["cdnjs_url"], namespace["mathjax_path"]  # type: ignore[return-value]


def _npm_source(url: str) -> tuple[str, str]:
    """(npm spec, path inside the package) for one of visdom's ``ext_files`` URLs."""
    if url in CDN_TO_NPM:
        return CDN_TO_NPM[url]
    parsed = urlparse(url)
    if parsed.netloc != "unpkg.com":
        raise AssetError(f"no npm source known for visdom asset {url}; add it to CDN_TO_NPM")
    # unpkg paths: /<name>@<version>[/<file>] (scoped names would start with '@': none in visdom)
    spec, _, path = parsed.path.lstrip("/").partition("/")
    if "@" not in spec:
        raise AssetError(f"visdom asset {url} names no version")
    # the '#fragment' of the svg font is part of visdom's file name but not of the package path
    return spec, path


def visdom_assets(install_dir: Path | None = None) -> list[Asset]:
    """Every file visdom's ``download_scripts`` would fetch, with its destination and npm source."""
    install_dir = install_dir or visdom_install_dir()
    ext_files, cdnjs_url, mathjax_paths = _read_download_list()
    assets = []
    for url, name in ext_files.items():
        # same folder rule as download_scripts
        if name.endswith(".js") or name.endswith(".js.map"):
            sub_dir = "js"
        elif name.endswith(".css"):
            sub_dir = "css"
        else:
            sub_dir = "fonts"
        package, path = _npm_source(url)
        assets.append(Asset(url, install_dir / "static" / sub_dir / name, package, path))
    # MathJax: static/js/mathjax/<version>/<dir>/<file>, as download_scripts builds it
    version = cdnjs_url.rstrip("/").split("/")[-1]
    mathjax_dir = os.path.join(*cdnjs_url.split("/")[-3:])
    for path in mathjax_paths:
        filename = path.split("/")[-1].split("?")[0]
        folder = os.path.join(*path.split("/")[:-1]) if "/" in path else ""
        dest = install_dir / "static" / "js" / mathjax_dir / folder / filename
        package = MATHJAX_NPM.format(version=version)
        assets.append(Asset(cdnjs_url + path, dest, package, f"{folder}/{filename}".lstrip("/")))
    return assets


def _npm_pack(specs: list[str], dest: Path) -> dict[str, Path]:
    """``npm pack`` the specs into ``dest``; returns spec -> tarball path."""
    npm = shutil.which("npm")
    if npm is None:
        raise AssetError("npm not found: install Node.js/npm (Debian: apt-get install npm) to fetch visdom's assets")
    cmd = [npm, "pack", *specs, "--json", "--silent", f"--pack-destination={dest}"]
    # few retries with short waits: an unreachable registry should fail in seconds, not minutes
    cmd += ["--fetch-retries=1", "--fetch-retry-mintimeout=2000", "--fetch-retry-maxtimeout=5000"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, cwd=dest)
    except subprocess.TimeoutExpired as exc:
        raise AssetError(f"npm pack timed out after {NPM_TIMEOUT_S} s: is the npm registry reachable?") from exc
    if proc.returncode != 0:
        raise AssetError(f"npm pack failed (is the npm registry reachable?): {_npm_error(proc)}")
    # --json prints one object per packed spec, in order
    entries = json.loads(proc.stdout)
    return {spec: dest / entry["filename"] for spec, entry in zip(specs, entries, strict=True)}


def _npm_error(proc: subprocess.CompletedProcess) -> str:
    """The one-line reason of a failed ``npm pack --json`` (a JSON error object on stdout)."""
    try:
        return json.loads(proc.stdout)["error"]["summary"].strip().splitlines()[0]
    except (ValueError, KeyError, TypeError, IndexError):
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit status {proc.returncode}"


def _extract(tarball: Path, dest: Path) -> Path:
    """Extract an npm tarball; returns the package root (usually ``package/``, not always)."""
    with tarfile.open(tarball) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: refuse unsafe member paths
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
    roots = [p for p in dest.iterdir() if p.is_dir()]
    if len(roots) != 1:
        raise AssetError(f"unexpected layout in {tarball.name}")
    return roots[0]


def _main_file(package_root: Path) -> str:
    """What unpkg serves for a bare ``name@version`` URL: package.json's ``main`` (default index.js)."""
    main = json.loads((package_root / "package.json").read_text()).get("main") or "index.js"
    main = main.removeprefix("./")
    return main if (package_root / main).is_file() else main + ".js"


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)  # atomic: the server never serves a half-copied file


def ensure_visdom_assets(install_dir: Path | None = None, log=print) -> list[Asset]:
    """Make visdom's server start offline; returns the assets that were fetched (empty: nothing to do).

    Raises ``AssetError`` with a one-line message when the files cannot be obtained.
    """
    install_dir = install_dir or visdom_install_dir()
    version = visdom_version()
    built = install_dir / "static" / "version.built"
    assets = visdom_assets(install_dir)
    missing = [a for a in assets if not a.dest.is_file() or a.dest.stat().st_size == 0]
    built_ok = built.is_file() and built.read_text().strip() == version
    if not missing and built_ok:
        log(f"visdom {version} assets: all {len(assets)} files present in {install_dir / 'static'}; nothing to do")
        return []

    start = time.monotonic()
    specs = sorted({a.package for a in missing})
    if missing:
        log(f"visdom {version}: fetching {len(missing)} of {len(assets)} files from npm: {' '.join(specs)}")
        with tempfile.TemporaryDirectory(prefix="visdom-assets-") as tmp:
            tarballs = _npm_pack(specs, Path(tmp))
            roots = {spec: _extract(tarball, Path(tmp) / f"x{i}") for i, (spec, tarball) in enumerate(tarballs.items())}
            for asset in missing:
                root = roots[asset.package]
                path = asset.path_in_package or _main_file(root)
                src = root / path
                if not src.is_file():
                    raise AssetError(f"{asset.package} has no {path} (needed for {asset.url})")
                _copy(src, asset.dest)
                log(f"  {asset.package}/{path} -> {asset.dest.relative_to(install_dir)}")
    # last, so an interrupted run is redone rather than trusted
    built.write_text(version)
    log(f"wrote {built.relative_to(install_dir)} ({version}); done in {time.monotonic() - start:.1f} s")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--install-dir",
        type=Path,
        default=None,
        help="visdom package folder to fill (default: the visdom installed for this interpreter)",
    )
    args = parser.parse_args(argv)
    try:
        ensure_visdom_assets(args.install_dir)
    except AssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
