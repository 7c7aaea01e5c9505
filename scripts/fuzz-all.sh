#!/bin/sh
# Runs every fuzz target of the module for $1 (default 1m) each.
set -eu
t="${1:-1m}"
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "== $pkg $f"
		go test -run "^$" -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime 100x "$pkg"
	done
done
