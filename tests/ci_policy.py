"""pytest plugin (loaded by ``-p tests.ci_policy`` in pyproject.toml): under CI a skipped test is
a failure.

Locally a test whose tool is missing (Chromium, visdom's assets, ../shared) skips and says why;
under CI (``CI=true``, as ``.ci/run`` sets) ``make test`` has provisioned everything, so a skip is
a test that did not run: the session fails and lists them. An expected failure (xfail) is not a
skip.
"""

from __future__ import annotations

import os

import pytest

_SKIPPED: list[str] = []


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if under_ci() and _SKIPPED and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if under_ci() and _SKIPPED:
        terminalreporter.section("skipped under CI: each is a failure", red=True)
        for line in _SKIPPED:
            terminalreporter.line(line)
