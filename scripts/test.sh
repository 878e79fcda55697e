#!/usr/bin/env bash
# Set up what is missing (idempotent), then run the test suite with real LAMMPS and MPI.
# Arguments go to pytest: `bash scripts/test.sh tests/unit` runs only the tests without
# LAMMPS (seconds); tests/integration/ runs real LAMMPS under mpirun.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
# OpenMPI refuses to run as root and to start more ranks than cores unless told to.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
export OMP_NUM_THREADS=1
exec "$ROOT/.venv/bin/python" -m pytest "$@"
