#!/usr/bin/env bash
# The one deliberate upgrade step: re-resolve to the newest versions pyproject.toml allows (and
# vLLM's CPU build accepts, see scripts/lock.py), install them into a fresh environment, run the
# whole test suite there, and rewrite constraints.txt only when it passes.
#   bash scripts/upgrade-lock.sh            # upgrade the lock
#   bash scripts/upgrade-lock.sh --newest   # only test against the newest versions, ignoring
#                                           # vLLM's pins (what `pip install` gives users today);
#                                           # never writes the lock
# The environment is kept in .venv-upgrade (or $VENV) for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
newest=""
[ "${1:-}" = "--newest" ] && newest="--newest"
VENV=${VENV:-.venv-upgrade}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/lock.py resolve $newest --out "$work/constraints.txt" 2> >(grep -v "^WARNING: Location '" >&2)
echo "== changes against the lock:"
python3 scripts/lock.py diff constraints.txt "$work/constraints.txt"
rm -rf "$VENV"
VENV="$VENV" LOCK="$work/constraints.txt" bash scripts/install.sh
echo "== running the test suite in $VENV"
"$VENV/bin/python" -m pytest -q
if [ -n "$newest" ]; then
  echo "== the suite passes against the newest versions (the lock is unchanged)"
else
  cp "$work/constraints.txt" constraints.txt
  echo "== the suite passes: constraints.txt rewritten (commit it)"
fi
