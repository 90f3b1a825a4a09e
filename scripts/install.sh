#!/usr/bin/env bash
# Install gatecheck on a fresh Debian machine with Python 3.11: system packages,
# a virtualenv in .venv, and the package itself. `--dev` adds test tooling.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"

apt_pkgs=()
python3 -m venv --help >/dev/null 2>&1 || apt_pkgs+=(python3-venv)
# pandoc: the independent extractor the accuracy tests compare against;
# poppler-utils: pdftotext/pdfinfo for PDF cross-checks and benchmarks.
if [ "$dev" = 1 ]; then
  command -v pandoc >/dev/null || apt_pkgs+=(pandoc)
  command -v pdftotext >/dev/null || apt_pkgs+=(poppler-utils)
  # LibreOffice exports corpus .docx to PDF for the "PDF counts like its docx" test.
  command -v soffice >/dev/null || apt_pkgs+=(libreoffice-writer-nogui)
  # A real Redis server for the broker/state integration tests (the tests start and stop it).
  command -v redis-server >/dev/null || apt_pkgs+=(redis-server)
  # ClamAV daemon for the malware-scan tests (they load a test signature set; production runs freshclam).
  command -v clamd >/dev/null || apt_pkgs+=(clamav-daemon)
fi
if [ "${#apt_pkgs[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$dev" = 1 ]; then
  .venv/bin/python -m pip install -q -e '.[dev]'
else
  .venv/bin/python -m pip install -q -e .
fi
