#!/usr/bin/env bash
# Run a Stoker worker (installing it into ./.venv first if needed).
#
#   ./run_worker.sh            the daemon: python -m worker run
#   ./run_worker.sh --demo     start the daemon, enqueue demo jobs, show them succeed, stop
#   ./run_worker.sh ARGS...    python -m worker ARGS (status, info, failed, enqueue, ...)
#
# With no REDIS_URL an embedded Valkey server starts (data in ./var/redis, append-only),
# and with no DATABASE_URL the jobs are recorded in ./var/stoker.db (SQLite, WAL).
set -euo pipefail
cd "$(dirname "$0")"
deploy/install.sh
if [ "${1:-}" = "--demo" ]; then
    exec .venv/bin/python -m worker demo
fi
exec .venv/bin/python -m worker "${@:-run}"
