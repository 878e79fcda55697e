#!/usr/bin/env bash
# Usage: examples/quickstart/run.sh NPROCS OUTDIR [MODEL]
# Runs a small thermal fcc Ni system with in-situ classification on NPROCS MPI ranks:
# fractions in the thermo output, OUTDIR/labels.dump (id type x y z i_nm_class d_nm_conf)
# and OUTDIR/log.h5.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NPROCS="${1:-2}"
OUTDIR="$(realpath -m "${2:-out/quickstart}")"
MODEL="$(realpath -m "${3:-$ROOT/models/crystal-nm.onnx}")"
mkdir -p "$OUTDIR"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
cd "$OUTDIR"
mpirun -np "$NPROCS" --oversubscribe "$ROOT/.venv/bin/insitu" lmp \
    -in "$ROOT/examples/quickstart/in.quickstart.lmp" \
    -var model "$MODEL" -var outdir "$OUTDIR" -log "$OUTDIR/log.lammps"
echo "quickstart: per-atom labels in $OUTDIR/labels.dump, log in $OUTDIR/log.h5"
