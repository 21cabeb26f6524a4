"""Flag scopes: each option declares, where it is declared, which runs pass it on.

Options are read by scope (``Options.keys_in``), so no module keeps its own
list of option names, and a model's or dataset's ``modify_options`` hook tags the flags it adds
the same way (``add(group, "--my_flag", scope=(ARCHITECTURE,), ...)``).
"""

from __future__ import annotations

import argparse
from typing import Any

ARCHITECTURE = "architecture"  # test.py takes it from the trained run's opt.yaml unless given
INVOCATION = "invocation"  # this command's own: --continue_train does not take it from the run
TEST_TIME = "test_time"  # an evaluation during training (--eval_freq) uses test.py's default
FIXED = "fixed"  # part of what a checkpoint holds: --continue_train refuses a change


def add(group: argparse._ActionsContainer, *flags: str, scope: tuple[str, ...] = (), **kwargs: Any) -> argparse.Action:
    """``group.add_argument`` that also records the flag's scopes on its action."""
    action = group.add_argument(*flags, **kwargs)
    action.scopes = frozenset(scope)  # type: ignore[attr-defined]
    return action
