#!/usr/bin/env bash
# Usage: examples/ni_ramp/run.sh [NPROCS] [OUTDIR] [MODEL] [-- extra LAMMPS args]
#
# The quick Ni melt-quench ramp (lammps_inputs/ni_melt_quench.lmp: 864 atoms, heating
# 300 -> 2500 K at 2e13 K/s, 20 ps at 2500 K, quench to 10 K at 1e14 K/s) on NPROCS MPI
# ranks with the in-situ fcc / liquid / amorphous classification (the fractions are thermo
# columns v_nm_*), then the plot and the ramp validation.  Writes OUTDIR/log.h5 (HDF5 log),
# OUTDIR/log.lammps and OUTDIR/ni_ramp.png.  The paper's size and rates: add `-- -var paper 1`.
# Velocity seed: the input's default (4928459), which the shipped model was neither trained
# nor validated on (its card lists those seeds; `insitu validate` fails a run on a training
# seed); another one: `-- -var seed N`.  Three seeds at once: examples/ni_ramp/validate_seeds.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
POS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do POS+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
NPROCS="${POS[0]:-2}"
OUTDIR="$(realpath -m -- "${POS[1]:-$ROOT/out/ni_ramp}")"
MODEL="$(realpath -m -- "${POS[2]:-$ROOT/models/ni-fcc-liquid-amorphous.onnx}")"
if [ ! -f "$MODEL" ]; then
    echo "ni_ramp: model not found: $MODEL (retrain: .venv/bin/insitu ramp train ni --run)" >&2
    exit 2
fi
mkdir -p "$OUTDIR"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1
# ranks that wait in MPI give the core away (matters when ranks share cores with other work)
export OMPI_MCA_mpi_yield_when_idle=1
rm -f "$OUTDIR/log.h5"
cd "$OUTDIR"
mpirun -np "$NPROCS" --oversubscribe --bind-to none "$ROOT/.venv/bin/insitu" lmp \
    -in "$ROOT/lammps_inputs/ni_melt_quench.lmp" \
    -var model "$MODEL" -var outdir "$OUTDIR" -log "$OUTDIR/log.lammps" "$@"
"$ROOT/.venv/bin/insitu" plot "$OUTDIR/log.h5" -o "$OUTDIR/ni_ramp.png" \
    --title "Ni melt + quench (quick ramp), in-situ Neighbors Map CNN on $NPROCS MPI rank(s)"
"$ROOT/.venv/bin/insitu" validate "$OUTDIR/log.h5" || true
echo
echo "ni_ramp: log  $OUTDIR/log.h5  (thermo: $OUTDIR/log.lammps)"
echo "ni_ramp: plot $OUTDIR/ni_ramp.png"
