"""scripts/start_visdom.sh and scripts/stop_visdom.sh: a real server in the background, its PID
file, "already running", and a clean stop."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, port: int, run_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "VISDOM_RUN_DIR": str(run_dir)}
    return subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / name), str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_start_twice_then_stop(visdom_assets, free_port: int, tmp_path: Path):
    run_dir = tmp_path / "visdom-run"
    pid_file = run_dir / f"visdom-{free_port}.pid"
    started = run_script("start_visdom.sh", free_port, run_dir)
    try:
        assert started.returncode == 0, started.stderr
        assert f"http://localhost:{free_port}" in started.stdout
        pid = int(pid_file.read_text())
        assert f"PID {pid}" in started.stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{free_port}/", timeout=5) as response:
            assert b"visdom" in response.read().lower()

        again = run_script("start_visdom.sh", free_port, run_dir)
        assert again.returncode == 0 and "already running" in again.stdout
        assert int(pid_file.read_text()) == pid
    finally:
        stopped = run_script("stop_visdom.sh", free_port, run_dir)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not pid_file.exists()
    assert not Path(f"/proc/{pid}").exists() or "visdom" not in Path(f"/proc/{pid}/cmdline").read_text()

    gone = run_script("stop_visdom.sh", free_port, run_dir)
    assert gone.returncode == 0 and "no visdom server" in gone.stdout
