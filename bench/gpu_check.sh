#!/usr/bin/env bash
# Every CUDA path in one command (under 5 minutes on one GPU): each processor single and
# batched on cuda:0, a deliberate CUDA out-of-memory that is retried and then succeeds,
# and two workers pinned to two devices when there are two. Prints its figures.
#   bash bench/gpu_check.sh            # on a GPU machine
#   bash bench/gpu_check.sh --device cpu   # a dry run of the same script without a GPU
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" bench/gpu_check.py "$@"
