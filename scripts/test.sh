#!/usr/bin/env bash
# Install scoregate with its test extras into .venv and run the whole test suite.
#
#   bash scripts/test.sh                  # SQLite, in-process limiter
#   SCOREGATE_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
#   SCOREGATE_TEST_REDIS_URL=redis://127.0.0.1:6379/14 bash scripts/test.sh   # PostgreSQL + Redis
#
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
