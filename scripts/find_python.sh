# Sourced by the scripts/*.sh wrappers: $python is $PYTHON if set, else the project's .venv python,
# else python3; $repo is the repository root (so the wrappers work from any folder).
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${PYTHON:-}" ]; then
  python="$PYTHON"
elif [ -x "$repo/.venv/bin/python" ]; then
  python="$repo/.venv/bin/python"
else
  python=python3
fi
