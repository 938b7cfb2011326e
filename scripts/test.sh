#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run the suite.
#   bash scripts/test.sh            # the whole suite, as CI runs it
#   bash scripts/test.sh -m 'not slow' tests/test_sim_scenario_file.py   # arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages for the staging stand-in: a real Redis and a real PostgreSQL, and a real
# Prometheus (with promtool) over it.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
# node and npm: the tests fetch the Argo Rollouts schema (an npm package) and run it.
{ command -v node && command -v npm; } >/dev/null 2>&1 || missing+=(nodejs npm)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

# The lab with every extra (sandbox, load, chaos, sweep, validation, notebooks, test). The
# install also compiles the hot path with mypyc where a C compiler is at hand (setup.py);
# there, the suite requires the compiled path (tests/test_sim_compiled.py compares it with
# the pure one) rather than skipping its tests.
python -m pip install -q --disable-pip-version-check -e '.[all]'
if command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1; then
    export OMNISQL_REQUIRE_COMPILED=1
fi
python -c 'import sim; print(sim.path_status().notice())'
if [ -f chaos/pyproject.toml ]; then
    python -m pip install -q --disable-pip-version-check -e chaos/
fi

# The whole suite (no arguments, as CI runs it) starts with the linters CI enforces, and
# runs on two pytest-xdist workers (OMNISQL_TEST_WORKERS): most of its time is spent waiting
# on stand-ins, and tests/conftest.py keeps the tests sharing a stand-in on one worker.
if (($# == 0)); then
    python -m ruff check .
    python -m mypy
    set -- -n "${OMNISQL_TEST_WORKERS:-2}" --dist loadgroup
fi

exec python -m pytest "$@"
