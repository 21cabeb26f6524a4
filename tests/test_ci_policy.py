"""Under CI a skipped test fails the run (tests/ci_policy.py); locally it only skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

SAMPLE = """
import pytest

def test_runs():
    pass

def test_needs_a_tool():
    pytest.skip("no such tool here")

@pytest.mark.xfail(strict=True, reason="a known bug")
def test_known_bug():
    assert False
"""


def run_sample(tmp_path: Path, ci: str | None, only: str | None = None) -> subprocess.CompletedProcess:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the repo's options
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(REPO_ROOT)
    target = str(tmp_path / "test_sample.py") + (f"::{only}" if only else "")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "tests.ci_policy", "-c", str(tmp_path / "pytest.ini"), target]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_skip_fails_the_run_under_ci_and_is_named(tmp_path: Path) -> None:
    result = run_sample(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "skipped under CI: each is a failure" in result.stdout
    assert "test_sample.py::test_needs_a_tool: Skipped: no such tool here" in result.stdout
    assert "test_known_bug" not in result.stdout.split("skipped under CI")[1].split("short test summary")[0]


def test_a_skip_is_only_a_skip_outside_ci(tmp_path: Path) -> None:
    for ci in (None, "false", "0"):
        result = run_sample(tmp_path, ci)
        assert result.returncode == 0, result.stdout
        assert "1 passed, 1 skipped, 1 xfailed" in result.stdout
        assert "skipped under CI" not in result.stdout


def test_a_run_without_skips_passes_under_ci(tmp_path: Path) -> None:
    result = run_sample(tmp_path, "true", only="test_runs")
    assert result.returncode == 0, result.stdout
