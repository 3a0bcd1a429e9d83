#!/usr/bin/env bash
# testenv-stop.sh stops the throwaway Redis and PostgreSQL that testenv.sh started (and only
# those: servers it merely found running are left alone). Pass --purge to delete their files too.
set -euo pipefail

redis_port="${SB_OWN_REDIS_PORT:-56379}"
redis_dir="${SB_OWN_REDIS_DIR:-/tmp/switchboard-redis}"
pg_dir="${SB_OWN_PG_DIR:-/tmp/switchboard-pg}"

if [ -f "$redis_dir/redis.pid" ]; then
	pid="$(cat "$redis_dir/redis.pid")"
	if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "redis-server.*$redis_port"; then
		echo "==> stopping our redis-server (pid $pid, port $redis_port)"
		kill "$pid"
	fi
	rm -f "$redis_dir/redis.pid"
fi

if [ -f "$pg_dir/data/PG_VERSION" ]; then
	pgbin="/usr/lib/postgresql/$(cat "$pg_dir/data/PG_VERSION")/bin"
	as_pg=()
	[ "$(id -u)" -ne 0 ] || as_pg=(runuser -u postgres --)
	if "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pg_dir/data" status >/dev/null 2>&1; then
		echo "==> stopping our PostgreSQL cluster in $pg_dir/data"
		"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null
	fi
fi

if [ "${1:-}" = "--purge" ]; then
	echo "==> removing $redis_dir and $pg_dir"
	rm -rf "$redis_dir" "$pg_dir"
fi
