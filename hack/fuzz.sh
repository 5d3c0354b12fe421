#!/usr/bin/env bash
# Runs every fuzz target (func FuzzXxx in a _test.go file) of the module for
# a bounded time each: go test allows only one -fuzz target per run.
#
#   hack/fuzz.sh [FUZZTIME]   default 20s; any go test -fuzztime value
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-20s}"

# The module's test files: tracked and untracked-but-not-ignored in a git
# checkout, every one outside bin/ and testbin/ otherwise.
test_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard -- '*_test.go'
  else
    find . -path ./bin -prune -o -path ./testbin -prune -o -name '*_test.go' -print | sed 's#^\./##'
  fi
}

found=0
while IFS= read -r file; do
  dir="./$(dirname "$file")"
  while IFS= read -r name; do
    found=$((found + 1))
    echo "fuzz: $dir $name for $fuzztime" >&2
    go test "$dir" -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime"
  done < <(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file")
done < <(test_files | sort)

if [ "$found" -eq 0 ]; then
  echo "fuzz: no fuzz targets in the module" >&2
fi
