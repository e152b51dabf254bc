#!/usr/bin/env bash
# Run a Stoker worker (installing it into ./.venv first if needed).
#
#   ./run_worker.sh            the daemon: python -m worker run
#   ./run_worker.sh --demo     make a short conversation and clip, run a job on every installed
#                              processor (and a bad one) with the daemon, summarize each, stop
#   ./run_worker.sh ARGS...    python -m worker ARGS (status, info, watch, results, failed, ...)
#   ./run_worker.sh web        the web dashboard and HTTP API on http://127.0.0.1:9181
#
# With no REDIS_URL an embedded Valkey server starts on port 6379 when free (data in
# ./var/redis, append-only; shared by every worker and CLI call, stopped with the last
# worker), and with no DATABASE_URL the jobs are recorded in ./var/stoker.db (SQLite, WAL),
# from whatever folder this is run (WORKER_DATA_DIR moves ./var).
set -euo pipefail
cd "$(dirname "$0")"
deploy/install.sh
if [ "${1:-}" = "--demo" ]; then
    exec .venv/bin/python -m worker demo
fi
exec .venv/bin/python -m worker "${@:-run}"
