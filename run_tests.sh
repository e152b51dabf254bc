#!/usr/bin/env bash
# Run the whole test suite (installing Stoker and the test dependencies first).
# The suite starts its own redis-server and PostgreSQL; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
deploy/install.sh --test
# 2-core machines: more threads under load made torch 100x slower here.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export STOKER_SOAK_JOBS=${STOKER_SOAK_JOBS:-1000}
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
