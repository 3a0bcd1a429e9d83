#!/usr/bin/env bash
# test.sh is `make test`: it provides the servers and tools (scripts/testenv.sh), then runs,
# in order and stopping at the first failure:
#   1. gofmt        fails on any unformatted .go file
#   2. go vet ./...
#   3. staticcheck ./...
#   4. go test -race -count=1 -timeout 20m ./...
#   5. a short fuzz pass: every `func FuzzX` in a _test.go file, for SWITCHBOARD_FUZZTIME each
#      (default 10s); found with grep, so new targets join automatically
# The output ends with go test's own result lines.
#
# Usage: scripts/test.sh [all|lint|unit|fuzz]   (default all; lint = steps 1-3)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
stage="${1:-all}"
set -- # a sourced script sees our arguments when it is given none
fuzztime="${SWITCHBOARD_FUZZTIME:-10s}"

say() { printf '==> %s\n' "$*"; }

case "$stage" in
all | unit) source scripts/testenv.sh ;;
lint) source scripts/testenv.sh go staticcheck ;;
fuzz) ;;
*)
	echo "usage: $0 [all|lint|unit|fuzz]" >&2
	exit 2
	;;
esac

# go_files lists the repository's .go files, leaving out folders go ignores.
go_files() {
	find . -mindepth 1 -type d \( -name testdata -o -name vendor -o -name node_modules -o -name '.*' -o -name '_*' \) \
		-prune -o -type f -name '*.go' -print
}

lint() {
	say "gofmt -l"
	local files unformatted
	files="$(go_files)"
	if [ -n "$files" ]; then
		# shellcheck disable=SC2086
		unformatted="$(gofmt -l $files)"
		if [ -n "$unformatted" ]; then
			echo "These files are not gofmt-formatted (run: gofmt -w FILE):" >&2
			sed 's/^/  /' <<<"$unformatted" >&2
			exit 1
		fi
	fi
	say "go vet ./..."
	go vet ./...
	say "staticcheck ./... ($STATICCHECK)"
	"$STATICCHECK" ./...
}

unit_log=""
unit() {
	say "go test -race -count=1 -timeout 20m ./..."
	unit_log="$(mktemp)"
	go test -race -count=1 -timeout 20m ./... 2>&1 | tee "$unit_log"
}

# fuzz_targets prints "DIR NAME" for every fuzz target.
fuzz_targets() {
	local f
	go_files | grep '_test\.go$' | while read -r f; do
		sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f" | while read -r name; do
			printf '%s %s\n' "$(dirname "$f")" "$name"
		done
	done | sort -u
}

fuzz_ran=""
fuzz() {
	local targets dir name n=0 out
	targets="$(fuzz_targets)"
	if [ -z "$targets" ]; then
		say "fuzz: no fuzz targets"
		return
	fi
	out="$(mktemp)"
	while read -r dir name; do
		n=$((n + 1))
		say "fuzz: go test -run='^\$' -fuzz='^$name\$' -fuzztime=$fuzztime $dir"
		if ! go test -run='^$' -fuzz="^$name\$" -fuzztime="$fuzztime" "$dir" >"$out" 2>&1; then
			cat "$out"
			echo "==> fuzz: $name in $dir FAILED (the failing input is saved under $dir/testdata/fuzz/$name)"
			exit 1
		fi
		tail -n 1 "$out"
	done <<<"$targets"
	rm -f "$out"
	say "fuzz: $n target(s) passed"
	fuzz_ran=1
}

case "$stage" in
all)
	lint
	unit
	fuzz
	# End with go test's own result lines, for whoever reads the tail of the log.
	if [ -n "$fuzz_ran" ]; then
		say "go test results (from step 4)"
		grep -E '^(ok|FAIL|\?|---|PASS|panic:)' "$unit_log" || true
	fi
	rm -f "$unit_log"
	;;
lint) lint ;;
unit) unit ;;
fuzz) fuzz ;;
esac
