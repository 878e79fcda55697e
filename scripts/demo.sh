#!/usr/bin/env bash
# The main job: set up what is missing (idempotent), then run the quick Ni melt-quench
# ramp on 2 MPI ranks with in-situ classification; prints where the log and plot are.
# The run uses the input's default velocity seed (4928459): not a training or validation
# seed of models/ni-fcc-liquid-amorphous.onnx (tests/unit/test_ramp_honesty.py checks it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1 OMP_NUM_THREADS=1
OUT="${1:-$ROOT/out/ni_ramp}"
bash "$ROOT/examples/ni_ramp/run.sh" 2 "$OUT"
