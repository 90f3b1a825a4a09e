#!/usr/bin/env bash
# Install everything (system + Python, dev extras) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev
.venv/bin/python -m ruff check .
exec .venv/bin/python -m pytest "$@"
