#!/usr/bin/env bash
# Runs every fuzz target (func FuzzXxx in a _test.go file) of the module and
# of the modules nested in it (api/wire) for a bounded time each: go test
# allows only one -fuzz target per run.
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

# module_of DIR: the directory of the Go module DIR belongs to (a nested
# module such as api/wire has its own go.mod; go test must run inside it).
module_of() {
  local d="$1"
  while [ "$d" != "." ] && [ ! -f "$d/go.mod" ]; do
    d="$(dirname "$d")"
  done
  echo "$d"
}

found=0
while IFS= read -r file; do
  dir="$(dirname "$file")"
  mod="$(module_of "$dir")"
  pkg="./${dir#"$mod"}"
  pkg="${pkg/#.\/\//./}"
  while IFS= read -r name; do
    found=$((found + 1))
    echo "fuzz: $mod $pkg $name for $fuzztime" >&2
    (cd "$mod" && go test "$pkg" -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime")
  done < <(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file")
done < <(test_files | sort)

if [ "$found" -eq 0 ]; then
  echo "fuzz: no fuzz targets in the modules" >&2
fi
