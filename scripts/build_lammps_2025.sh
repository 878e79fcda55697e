#!/usr/bin/env bash
# Build LAMMPS 4 Feb 2025 with the PYTHON, MANYBODY and MPI packages as a shared library,
# from Debian trixie's source package, into a cache folder outside the git tree (reused
# when present: a second run builds nothing).
#
#   bash scripts/build_lammps_2025.sh          # build if missing (~4 min with make -j2)
#   bash scripts/build_lammps_2025.sh --env    # print the exports that select this build
#   eval "$(bash scripts/build_lammps_2025.sh --env)"   # then lmp, `import lammps` are 2025
#
# Cache: $INSITU_CACHE (default ~/.cache/insitu)/lammps-20250204/{src,build}. The Python
# the embedded interpreter links against is INSITU_LAMMPS_PYTHON (default: the repository's
# .venv/bin/python, made by scripts/setup.sh); the `lammps` module is <src>/python and
# loads <build>/liblammps.so. The source comes through apt with a private source list
# (the machine's apt configuration is not touched); apt checks the tarballs' hashes against
# trixie's signed index.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${INSITU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/insitu}"
PREFIX="$CACHE/lammps-20250204"
SRC="$PREFIX/src"
BUILD="$PREFIX/build"
PY="${INSITU_LAMMPS_PYTHON:-$ROOT/.venv/bin/python}"
JOBS="${INSITU_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"

log() { printf '[lammps-2025] %s\n' "$*" >&2; }

print_env() {
    local pot=/usr/share/lammps/potentials
    [ -d "$pot" ] || pot="$SRC/potentials"
    echo "export PATH='$BUILD':\"\$PATH\""
    echo "export INSITU_LMP='$BUILD/lmp'"
    echo "export LD_LIBRARY_PATH='$BUILD'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
    echo "export PYTHONPATH='$SRC/python'\${PYTHONPATH:+:\$PYTHONPATH}"
    echo "export LAMMPS_POTENTIALS='$pot'"
    # The interpreter embedded in lmp takes its standard library from the `python3` found on
    # PATH, and OpenMPI's mpirun (called by its absolute path) puts /usr/bin first: point it
    # at the Python it was linked with when that is not the system's.
    local home
    home="$(cat "$BUILD/.insitu-python-home")"
    [ "$home" = "/usr" ] || echo "export PYTHONHOME='$home'"
}

# What the build depends on: the sources' version, the options, and the libpython.
OPTIONS=(-D PKG_PYTHON=on -D PKG_MANYBODY=on -D BUILD_SHARED_LIBS=on -D BUILD_MPI=on
         -D CMAKE_BUILD_TYPE=Release -D BUILD_TOOLS=off -D BUILD_LAMMPS_GUI=off
         -D WITH_JPEG=off -D WITH_PNG=off -D WITH_FFMPEG=off)
stamp_text() {
    local libpython
    libpython="$("$PY" -c 'import sysconfig as s, sys; print(sys.version.split()[0], s.get_config_var("LIBDIR"), s.get_config_var("LDLIBRARY"))')"
    echo "20250204+dfsg.1 ${OPTIONS[*]} python $libpython"
}

if [ "${1:-}" = "--env" ]; then
    if [ ! -f "$BUILD/.insitu-built" ]; then
        log "not built yet: run bash scripts/build_lammps_2025.sh"
        exit 1
    fi
    print_env
    exit 0
fi

if [ ! -x "$PY" ]; then
    log "no Python at $PY: run scripts/setup.sh first (or set INSITU_LAMMPS_PYTHON)"
    exit 1
fi
STAMP="$(stamp_text)"
if [ -f "$BUILD/.insitu-built" ] && [ "$(cat "$BUILD/.insitu-built")" = "$STAMP" ] \
        && [ -x "$BUILD/lmp" ]; then
    log "up to date ($BUILD)"
    exit 0
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
# Build tools, only those missing (a fresh Debian/Ubuntu has none of them).
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v mpicxx >/dev/null 2>&1 || missing+=(libopenmpi-dev openmpi-bin)
command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
if ! "$PY" -c 'import os, sysconfig, sys; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    missing+=(libpython3-dev)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing build tools: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$PREFIX/apt/lists/partial" "$PREFIX/apt/parts" "$PREFIX/download"
ORIG="$PREFIX/download/lammps_20250204+dfsg.1.orig.tar.xz"
if [ ! -f "$ORIG" ]; then
    log "downloading Debian trixie's lammps source package"
    cat > "$PREFIX/apt/trixie-src.sources" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    : > "$PREFIX/apt/status"
    APT=(-o "Dir::Etc::SourceList=$PREFIX/apt/trixie-src.sources"
         -o "Dir::Etc::SourceParts=$PREFIX/apt/parts"
         -o "Dir::State::Lists=$PREFIX/apt/lists"
         -o "Dir::State::status=$PREFIX/apt/status" -o "APT::Sandbox::User=root")
    apt-get "${APT[@]}" update -qq 2>&1 | grep -v '^W: ' >&2 || true
    # The .dsc answers 404 on this mirror, so apt exits non-zero although both tarballs
    # arrive (verified against the index): judge by the tarball.
    (cd "$PREFIX/download" && apt-get "${APT[@]}" source --download-only \
        lammps >/dev/null 2>&1) || true
    if [ ! -f "$ORIG" ]; then
        log "download failed: $ORIG is missing (trixie's lammps source package changed?)"
        exit 1
    fi
fi

if [ ! -f "$SRC/src/version.h" ]; then
    log "unpacking $(basename "$ORIG")"
    rm -rf "$SRC" "$PREFIX/unpack"
    mkdir -p "$PREFIX/unpack"
    tar -xJf "$ORIG" -C "$PREFIX/unpack"
    mv "$PREFIX/unpack"/* "$SRC"
    rmdir "$PREFIX/unpack"
fi
grep -q '4 Feb 2025' "$SRC/src/version.h" || { log "unexpected source version"; exit 1; }

log "configuring (cmake) in $BUILD"
rm -f "$BUILD/.insitu-built"
mkdir -p "$BUILD"
cmake -S "$SRC/cmake" -B "$BUILD" "${OPTIONS[@]}" -D Python_EXECUTABLE="$PY" >"$BUILD/cmake.log" 2>&1 \
    || { tail -30 "$BUILD/cmake.log"; exit 1; }
log "compiling with make -j$JOBS (a few minutes; log: $BUILD/make.log)"
t0=$(date +%s)
nice -n 10 make -C "$BUILD" -j"$JOBS" >"$BUILD/make.log" 2>&1 || { tail -40 "$BUILD/make.log"; exit 1; }
log "compiled in $(( $(date +%s) - t0 )) s"

"$BUILD/lmp" -h | grep -q 'python/invoke' || { log "lmp has no fix python/invoke"; exit 1; }
"$PY" -c 'import sys; print(sys.base_prefix)' > "$BUILD/.insitu-python-home"
echo "$STAMP" > "$BUILD/.insitu-built"
log "built $BUILD/lmp and $BUILD/liblammps.so; select it with: eval \"\$(bash $0 --env)\""
