#!/usr/bin/env bash
# Run every benchmark once, in sequence, and keep each one's output.
#
#   bash benchmarks/all.sh OUTDIR [--quick]
#
# Each benchmark measures forkman against its baseline in the same run and
# prints the ratio (see the docstring at the top of each script). OUTDIR gets
# one NAME.txt per benchmark, ending with its wall time and exit code.
# `vendor` and `real_suites` need the package registry; `audit` needs the
# advisory database of ../shared/fixtures (skipped when it is absent).
# --quick uses fewer runs and a smaller corpus (a few minutes in all).
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: bash benchmarks/all.sh OUTDIR [--quick]}"
quick="${2:-}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$here"
py="${PYTHON:-$here/.venv/bin/python}"
export PYTHONPATH="$here"
runs() { if [ "$quick" = "--quick" ]; then echo "$1"; else echo "$2"; fi; }
bench() {
  local name="$1"
  shift
  echo "== $name ($(date +%T))"
  { time "$py" "$@"; } >"$out/$name.txt" 2>&1
  echo "exit $?" >>"$out/$name.txt"
}
bench unpack benchmarks/unpack.py --rounds "$(runs 3 5)"
bench check benchmarks/check.py --runs "$(runs 9 15)"
bench precommit benchmarks/precommit.py --runs "$(runs 5 7)"
bench sync benchmarks/sync.py --forks "$(runs 20 30)" --repeat 3
bench sandbox benchmarks/sandbox.py --runs 30
bench actors benchmarks/actors.py
advisories="$here/../shared/fixtures/advisory-database/vulns"
if [ -d "$advisories" ]; then
  bench audit benchmarks/audit.py --source "$advisories" --pins 1000
else
  echo "== audit: skipped ($advisories is absent)"
fi
bench agent benchmarks/agent.py --runs 10
bench vendor benchmarks/vendor.py --runs 3 --workdir "$out/vendor-work"
bench real_suites benchmarks/real_suites.py --only "$(runs six,idna six,idna,attrs,markupsafe)" --jobs 1
rm -rf "$out/vendor-work"
echo "outputs in $out"
