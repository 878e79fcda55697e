#!/usr/bin/env bash
# Usage: examples/ni_ramp/validate_seeds.sh [OUTROOT] [SEED ...]
#
# The ramp model's honest check: the quick Ni ramp (examples/ni_ramp/run.sh, 2 MPI ranks,
# in-situ classification) once per velocity seed (-var seed; default 4928459 505 606, none of
# them a training or validation seed of models/ni-fcc-liquid-amorphous.onnx: see its card),
# then `insitu validate` on every log (heating 50 % crossing vs PE jump, quench crossing vs
# PE slope change, fcc excess in the quench, and the run's seed against the model's).
# PARALLEL=1 runs the seeds at the same time.  Writes OUTROOT/seed<SEED>/ and
# OUTROOT/validation.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUTROOT="$(realpath -m "${1:-$ROOT/out/ni_ramp_seeds}")"
shift $(( $# < 1 ? $# : 1 ))
SEEDS=("${@:-4928459 505 606}")
read -r -a SEEDS <<< "${SEEDS[*]}"
mkdir -p "$OUTROOT"
for s in "${SEEDS[@]}"; do
    if [ "${PARALLEL:-0}" = 1 ]; then
        bash "$ROOT/examples/ni_ramp/run.sh" 2 "$OUTROOT/seed$s" -- -var seed "$s" \
            > "$OUTROOT/seed$s.out" 2>&1 &
    else
        bash "$ROOT/examples/ni_ramp/run.sh" 2 "$OUTROOT/seed$s" -- -var seed "$s" \
            > "$OUTROOT/seed$s.out" 2>&1
    fi
done
wait
{
    echo "# produced by: bash examples/ni_ramp/validate_seeds.sh $OUTROOT ${SEEDS[*]}"
    echo "# = per seed: bash examples/ni_ramp/run.sh 2 OUTROOT/seed<SEED> -- -var seed <SEED>"
    echo "#   (quick ramp, 864 atoms, 2 MPI ranks), then .venv/bin/insitu validate OUTROOT/seed<SEED>/log.h5"
    echo "# model: models/ni-fcc-liquid-amorphous.onnx (sha256 $(sha256sum "$ROOT/models/ni-fcc-liquid-amorphous.onnx" | cut -c1-16)...)"
    for s in "${SEEDS[@]}"; do
        echo
        "$ROOT/.venv/bin/insitu" validate "$OUTROOT/seed$s/log.h5" || true
    done
} > "$OUTROOT/validation.txt"
cat "$OUTROOT/validation.txt"
