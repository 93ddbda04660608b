#!/usr/bin/env bash
# Set up forkman from a fresh clone and run its main job on a real package:
# fork attrs 23.1.0 from PyPI into a new consumer project, show its status, check it,
# and rebuild it from upstream (verify).
#
#   bash scripts/quickstart.sh [WORKDIR]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
venv="$here/.venv"
if [ ! -x "$venv/bin/forkman" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e "$here"
fi
work="${1:-$(mktemp -d -t forkman-quickstart-XXXXXX)}"
mkdir -p "$work"
cd "$work"
if [ ! -d .git ]; then
  git init -q -b main
  git config user.name "forkman quickstart"
  git config user.email "quickstart@example.invalid"
fi
[ -f pyproject.toml ] || printf '[project]\nname = "consumer"\nversion = "0.1.0"\n' > pyproject.toml
export PATH="$venv/bin:$PATH"
set -x
forkman init
forkman fork attrs==23.1.0
forkman status
forkman check
forkman verify attrs
set +x
echo
echo "A consumer project with a fork of attrs 23.1.0 is in $work"
echo "Next: edit $work/vendor/attrs/src/attr/_make.py, then 'forkman check' and 'forkman patch attrs -m \"...\"'"
