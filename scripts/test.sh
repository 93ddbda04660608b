#!/usr/bin/env bash
# Set up a development environment from a fresh clone and run every test.
#
# 1. a virtual environment in .venv with forkman and its test, docs and ray extras;
# 2. the tests that need no network, inside a network namespace with nothing but
#    loopback (proof that they really need no network), in parallel;
# 3. the sandbox containment battery on the host's own network: its network
#    attacks target this host's other addresses and resolver, which a
#    loopback-only namespace would hide (it reaches nothing beyond this host);
# 4. the tests marked `network`, against the real package index;
# 5. the documentation build (mkdocs --strict), ruff and mypy (strict, over forkman/ and tests/).
#
#   bash scripts/test.sh [extra pytest args]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test,docs,ray]"
py="$here/.venv/bin/python"
jobs="${FORKMAN_TEST_JOBS:-2}"

echo "== offline tests (network namespace: loopback only)"
if unshare -rn true 2>/dev/null; then
  unshare -rn sh -c "ip link set lo up && exec '$py' -m pytest -m 'not network' -n $jobs -p no:cacheprovider --ignore=tests/sandbox $*"
else
  echo "(no user namespaces here: running offline tests without the network namespace)"
  "$py" -m pytest -m "not network" -n "$jobs" -p no:cacheprovider --ignore=tests/sandbox "$@"
fi

echo "== sandbox containment battery (host network: attacks aim at this host only)"
"$py" -m pytest tests/sandbox -m "not network" -n "$jobs" -p no:cacheprovider "$@"

echo "== network tests (real package index)"
"$py" -m pytest -m network -p no:cacheprovider "$@"

echo "== lint and docs"
"$py" -m ruff check forkman tests benchmarks
"$py" -m mypy
if [ -f mkdocs.yml ]; then
  "$py" -m mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
fi
echo "all tests passed"
