#!/usr/bin/env bash
# testenv.sh provides what Switchboard's tests need on a Debian machine, installing and
# starting whatever is missing, and exports where to find it:
#
#   SWITCHBOARD_TEST_REDIS     redis://127.0.0.1:PORT/0, a Redis that answers PING
#   SWITCHBOARD_REDIS_SERVER   the redis-server binary, for tests that start their own
#   SWITCHBOARD_TEST_POSTGRES  postgres://…/test, a passwordless PostgreSQL database
#   SWITCHBOARD_PG_BIN         the PostgreSQL bin folder (initdb, pg_ctl, …)
#   SWITCHBOARD_CHROMIUM       the Chromium binary for browser tests
#   STATICCHECK                the pinned staticcheck binary
#   CGO_ENABLED=1              only when it was off: go test -race needs cgo (and gcc,
#                              which it installs when missing)
#
# From a bash script, source it so the variables reach the script (it turns on
# set -euo pipefail and exits on error):                source scripts/testenv.sh [PART…]
# From an interactive shell, run it for export lines:   eval "$(scripts/testenv.sh)"
# PART is any of go redis postgres chromium staticcheck, or all (the default).
# Progress goes to stderr as "==>" lines.
#
# Knobs (for testing the fresh-machine paths on a machine that already has servers):
#   SWITCHBOARD_TEST_FORCE_OWN_REDIS=1  ignore SWITCHBOARD_TEST_REDIS and 127.0.0.1:6379
#   SWITCHBOARD_TEST_FORCE_OWN_PG=1     ignore SWITCHBOARD_TEST_POSTGRES and 127.0.0.1:5432
#
# Our own servers are throwaway and keep nothing worth keeping:
#   Redis on 127.0.0.1:56379 (files in /tmp/switchboard-redis), PostgreSQL on
#   127.0.0.1:55432 (cluster in /tmp/switchboard-pg). Later runs reuse them while they run.
# Stop them with: scripts/testenv-stop.sh

set -euo pipefail

SB_STATICCHECK_VERSION="${SB_STATICCHECK_VERSION:-v0.8.2}" # staticcheck 2026.2.2; builds with Go 1.26
SB_OWN_REDIS_PORT="${SB_OWN_REDIS_PORT:-56379}"
SB_OWN_REDIS_DIR="${SB_OWN_REDIS_DIR:-/tmp/switchboard-redis}"
SB_OWN_PG_PORT="${SB_OWN_PG_PORT:-55432}"
SB_OWN_PG_DIR="${SB_OWN_PG_DIR:-/tmp/switchboard-pg}"
SB_LOCAL_REDIS="redis://127.0.0.1:6379/0"
SB_LOCAL_PG="postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

sb_say() { printf '==> %s\n' "$*" >&2; }
sb_die() { printf '==> ERROR: %s\n' "$*" >&2; exit 1; }

# sb_root runs a command as root: directly when we are root, else through sudo.
sb_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		sb_die "need root to run: $* (install it by hand, or run as root)"
	fi
}

SB_APT_UPDATED="${SB_APT_UPDATED:-}"
SB_APT_LOG="${TMPDIR:-/tmp}/switchboard-apt.log"
# sb_apt_install installs Debian packages, running apt-get update once per run first.
# apt's chatter goes to $SB_APT_LOG, and its tail to stderr on failure.
sb_apt_install() {
	command -v apt-get >/dev/null 2>&1 || sb_die "apt-get not found: install $* by hand"
	local apt=(sb_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q -y)
	if [ -z "$SB_APT_UPDATED" ]; then
		sb_say "apt-get update (log: $SB_APT_LOG)"
		"${apt[@]}" update >>"$SB_APT_LOG" 2>&1 </dev/null ||
			{ tail -n 30 "$SB_APT_LOG" >&2; sb_die "apt-get update failed"; }
		SB_APT_UPDATED=1
	fi
	sb_say "apt-get install $* (log: $SB_APT_LOG)"
	"${apt[@]}" install "$@" >>"$SB_APT_LOG" 2>&1 </dev/null ||
		{ tail -n 30 "$SB_APT_LOG" >&2; sb_die "apt-get install $* failed"; }
}

# sb_url_hostport prints "HOST PORT" of a redis:// or postgres:// URL.
sb_url_hostport() {
	local rest="${1#*://}"
	rest="${rest%%/*}"
	rest="${rest%%\?*}"
	rest="${rest##*@}"
	local host="${rest%:*}" port="${rest##*:}"
	if [ "$host" = "$rest" ]; then port=""; fi
	printf '%s %s\n' "${host:-127.0.0.1}" "$port"
}

# sb_redis_ping URL succeeds when a Redis at URL answers PING within 3 s.
sb_redis_ping() {
	local url="$1"
	if command -v redis-cli >/dev/null 2>&1; then
		[ "$(timeout 3 redis-cli -u "$url" --no-auth-warning ping 2>/dev/null)" = "PONG" ]
		return
	fi
	# No client yet (fresh machine): speak RESP over bash's /dev/tcp. No auth.
	local hp host port
	hp="$(sb_url_hostport "$url")"
	host="${hp% *}"
	port="${hp#* }"
	port="${port:-6379}"
	# shellcheck disable=SC2016 # the inner script expands its own arguments
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf "PING\r\n" >&3
		IFS= read -r line <&3
		[ "${line%$'"'"'\r'"'"'}" = "+PONG" ]
	' _ "$host" "$port" 2>/dev/null
}

# sb_pg_ping URL succeeds when PostgreSQL at URL runs a query, without any password prompt.
sb_pg_ping() {
	PGCONNECT_TIMEOUT=3 timeout 10 psql -w -X -q -A -t -c 'select 1' "$1" >/dev/null 2>&1 </dev/null
}

sb_export() {
	export "$1=$2"
	SB_EXPORTED+=("$1")
}

# --- Redis -------------------------------------------------------------------------------

sb_setup_redis() {
	if ! command -v redis-server >/dev/null 2>&1; then
		sb_say "redis-server not found: installing Debian's redis-server"
		sb_apt_install redis-server
	fi
	local bin
	bin="$(command -v redis-server)" || sb_die "redis-server still not on PATH after install"
	sb_export SWITCHBOARD_REDIS_SERVER "$bin"

	if [ "${SWITCHBOARD_TEST_FORCE_OWN_REDIS:-}" != 1 ]; then
		if [ -n "${SWITCHBOARD_TEST_REDIS:-}" ]; then
			if sb_redis_ping "$SWITCHBOARD_TEST_REDIS"; then
				sb_say "Redis: using SWITCHBOARD_TEST_REDIS=$SWITCHBOARD_TEST_REDIS"
				sb_export SWITCHBOARD_TEST_REDIS "$SWITCHBOARD_TEST_REDIS"
				return
			fi
			sb_say "Redis: SWITCHBOARD_TEST_REDIS=$SWITCHBOARD_TEST_REDIS does not answer; looking further"
		fi
		if sb_redis_ping "$SB_LOCAL_REDIS"; then
			sb_say "Redis: using the running server at $SB_LOCAL_REDIS"
			sb_export SWITCHBOARD_TEST_REDIS "$SB_LOCAL_REDIS"
			return
		fi
	fi

	local url="redis://127.0.0.1:${SB_OWN_REDIS_PORT}/0"
	if sb_redis_ping "$url"; then
		sb_say "Redis: reusing our own server at $url"
	else
		sb_say "Redis: starting our own throwaway server at $url (files in $SB_OWN_REDIS_DIR)"
		mkdir -p "$SB_OWN_REDIS_DIR"
		"$bin" --port "$SB_OWN_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
			--daemonize yes --dir "$SB_OWN_REDIS_DIR" \
			--pidfile "$SB_OWN_REDIS_DIR/redis.pid" --logfile "$SB_OWN_REDIS_DIR/redis.log" >&2
			for _ in $(seq 1 100); do
			sb_redis_ping "$url" && break
			sleep 0.1
		done
		if ! sb_redis_ping "$url"; then
			tail -n 20 "$SB_OWN_REDIS_DIR/redis.log" >&2 || true
			sb_die "our redis-server on port $SB_OWN_REDIS_PORT did not answer"
		fi
	fi
	sb_export SWITCHBOARD_TEST_REDIS "$url"
}

# --- PostgreSQL ----------------------------------------------------------------------------

# sb_pg_bin prints the bin folder of the newest installed Debian PostgreSQL server.
sb_pg_bin() {
	local d best=""
	# shellcheck disable=SC2012 # version folders are plain numbers
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
		[ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && best="$d"
	done
	printf '%s\n' "$best"
}

# sb_as_pg runs a command as the owner of our cluster: the postgres user when we are root
# (initdb refuses root), else ourselves.
sb_as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		# From /: the postgres user may not be allowed into our working directory.
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

sb_setup_postgres() {
	# Tests that manage their own clusters need the server binaries even when a server runs.
	local pgbin
	pgbin="$(sb_pg_bin)"
	if [ -z "$pgbin" ]; then
		sb_say "PostgreSQL server binaries not found: installing Debian's postgresql"
		sb_apt_install postgresql
		pgbin="$(sb_pg_bin)"
		[ -n "$pgbin" ] || sb_die "no /usr/lib/postgresql/*/bin/initdb after installing postgresql"
	fi
	sb_export SWITCHBOARD_PG_BIN "$pgbin"

	if [ "${SWITCHBOARD_TEST_FORCE_OWN_PG:-}" != 1 ]; then
		if [ -n "${SWITCHBOARD_TEST_POSTGRES:-}" ]; then
			if sb_pg_ping "$SWITCHBOARD_TEST_POSTGRES"; then
				sb_say "PostgreSQL: using SWITCHBOARD_TEST_POSTGRES=$SWITCHBOARD_TEST_POSTGRES"
				sb_export SWITCHBOARD_TEST_POSTGRES "$SWITCHBOARD_TEST_POSTGRES"
				return
			fi
			sb_say "PostgreSQL: SWITCHBOARD_TEST_POSTGRES=$SWITCHBOARD_TEST_POSTGRES does not answer; looking further"
		fi
		if sb_pg_ping "$SB_LOCAL_PG"; then
			sb_say "PostgreSQL: using the running server at $SB_LOCAL_PG"
			sb_export SWITCHBOARD_TEST_POSTGRES "$SB_LOCAL_PG"
			return
		fi
	fi

	local base="$SB_OWN_PG_DIR" port="$SB_OWN_PG_PORT"
	local data="$base/data" sock="$base/sock" log="$base/postgres.log"
	local admin="postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable"
	local url="postgres://postgres@127.0.0.1:${port}/test?sslmode=disable"

	if sb_pg_ping "$url"; then
		sb_say "PostgreSQL: reusing our own cluster at $url"
		sb_export SWITCHBOARD_TEST_POSTGRES "$url"
		return
	fi

	local version
	version="$(basename "$(dirname "$pgbin")")"
	if [ -f "$data/PG_VERSION" ] && [ "$(cat "$data/PG_VERSION")" != "$version" ]; then
		sb_say "PostgreSQL: $data is from version $(cat "$data/PG_VERSION"), not $version: removing it"
		sb_as_pg "$pgbin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
		rm -rf "$data"
	fi

	mkdir -p "$base" "$sock"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres:postgres "$base" "$sock"
		chmod 700 "$base"
	fi

	if [ ! -f "$data/PG_VERSION" ]; then
		sb_say "PostgreSQL: creating our own throwaway cluster in $data ($pgbin)"
		rm -rf "$data"
		sb_as_pg "$pgbin/initdb" -D "$data" -A trust -U postgres -E UTF8 --locale=C --no-sync >"$base/initdb.log" 2>&1 ||
			{ cat "$base/initdb.log" >&2; sb_die "initdb failed"; }
		cat >>"$data/postgresql.conf" <<-EOF

			# switchboard test cluster: throwaway, fast, loopback only
			listen_addresses = '127.0.0.1'
			port = $port
			unix_socket_directories = '$sock'
			max_connections = 200
			fsync = off
			synchronous_commit = off
			full_page_writes = off
		EOF
	fi

	if ! sb_as_pg "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		sb_say "PostgreSQL: starting our own cluster on 127.0.0.1:$port"
		sb_as_pg "$pgbin/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null ||
			{ tail -n 30 "$log" >&2; sb_die "pg_ctl start failed (is port $port taken by another server?)"; }
	fi
	for _ in $(seq 1 100); do
		sb_pg_ping "$admin" && break
		sleep 0.1
	done
	sb_pg_ping "$admin" || { tail -n 30 "$log" >&2; sb_die "our PostgreSQL on port $port does not answer"; }
	if [ "$(psql -w -X -q -A -t -c "select 1 from pg_database where datname = 'test'" "$admin")" != 1 ]; then
		sb_say "PostgreSQL: creating database test"
		psql -w -X -q -c 'create database test' "$admin" >/dev/null
	fi
	sb_pg_ping "$url" || sb_die "cannot connect to $url"
	sb_say "PostgreSQL: using our own cluster at $url"
	sb_export SWITCHBOARD_TEST_POSTGRES "$url"
}

# --- Chromium ------------------------------------------------------------------------------

sb_setup_chromium() {
	if [ -n "${SWITCHBOARD_CHROMIUM:-}" ] && [ -x "$SWITCHBOARD_CHROMIUM" ]; then
		sb_say "Chromium: using SWITCHBOARD_CHROMIUM=$SWITCHBOARD_CHROMIUM"
		sb_export SWITCHBOARD_CHROMIUM "$SWITCHBOARD_CHROMIUM"
		return
	fi
	if ! command -v chromium >/dev/null 2>&1; then
		sb_say "chromium not found: installing Debian's chromium"
		sb_apt_install chromium
	fi
	local bin=/usr/bin/chromium
	[ -x "$bin" ] || bin="$(command -v chromium)" || sb_die "chromium still not on PATH after install"
	sb_say "Chromium: using $bin"
	sb_export SWITCHBOARD_CHROMIUM "$bin"
}

# --- staticcheck ---------------------------------------------------------------------------

sb_setup_staticcheck() {
	command -v go >/dev/null 2>&1 || sb_die "go not found on PATH"
	local gobin
	gobin="$(go env GOBIN)"
	[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
	local bin="$gobin/staticcheck" want="${SB_STATICCHECK_VERSION#v}"
	if ! [ -x "$bin" ] || ! "$bin" -version 2>/dev/null | grep -qF "($want)"; then
		sb_say "staticcheck $SB_STATICCHECK_VERSION not found: go install honnef.co/go/tools/cmd/staticcheck@$SB_STATICCHECK_VERSION"
		GOBIN="$gobin" go install "honnef.co/go/tools/cmd/staticcheck@$SB_STATICCHECK_VERSION" >&2
	fi
	sb_say "staticcheck: using $bin ($("$bin" -version))"
	case ":$PATH:" in
	*":$gobin:"*) ;;
	*) export PATH="$gobin:$PATH" ;;
	esac
	sb_export STATICCHECK "$bin"
}

# --- Go and a C compiler ------------------------------------------------------------------

# go test -race needs cgo, so a C compiler: Go's own tarball on a fresh Debian has none.
sb_setup_go() {
	command -v go >/dev/null 2>&1 || sb_die "go not found on PATH: install Go 1.26 first (https://go.dev/doc/install)"
	local cc
	cc="$(go env CC)"
	cc="${cc%% *}"
	if ! command -v "${cc:-gcc}" >/dev/null 2>&1; then
		sb_say "C compiler ${cc:-gcc} not found (go test -race needs cgo): installing Debian's gcc"
		sb_apt_install gcc libc6-dev
	fi
	if [ "$(go env CGO_ENABLED)" != 1 ]; then
		sb_say "CGO_ENABLED is not 1 (go test -race needs cgo): exporting CGO_ENABLED=1"
		sb_export CGO_ENABLED 1
	fi
	sb_say "Go: $(go version | cut -d' ' -f3-), C compiler $(command -v "${cc:-gcc}")"
}

# --- main ----------------------------------------------------------------------------------

sb_testenv() {
	local parts=("$@") part
	if [ ${#parts[@]} -eq 0 ] || [ "${parts[*]}" = all ]; then
		parts=(go redis postgres chromium staticcheck)
	fi
	SB_EXPORTED=()
	for part in "${parts[@]}"; do
		case "$part" in
		go) sb_setup_go ;;
		redis) sb_setup_redis ;;
		postgres) sb_setup_postgres ;;
		chromium) sb_setup_chromium ;;
		staticcheck) sb_setup_staticcheck ;;
		*) sb_die "testenv.sh: unknown part $part (want go, redis, postgres, chromium or staticcheck)" ;;
		esac
	done
}

sb_testenv "$@"

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	# Executed, not sourced: print the variables for eval.
	for v in "${SB_EXPORTED[@]}"; do
		printf 'export %s=%q\n' "$v" "${!v}"
	done
fi
