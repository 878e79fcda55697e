#!/usr/bin/env bash
# The Cu50Zr50 quenches of the GIIP example, kept small for a 2-core machine: 800 atoms,
# 2 fs timestep, 2 ps liquid at 2000 K, 2000 -> 1400 K at 3e14 K/s, then 1400 -> 500 K at
# 3e14, 1e14 or 3e13 K/s (a 10x span); one independent sample per seed (random placement
# and velocities), the same seeds at every rate. Serial LAMMPS runs, niced, two at a time
# (~10 min on an idle machine for the three default seeds).
#
#   bash examples/giip/run_cuzr_quenches.sh [seed ...]     (default: 87287 11 23)
set -euo pipefail
cd "$(dirname "$0")/../.."
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(87287 11 23)
run() {
  local out=out/giip/cuzr/rate_$1/seed_$2
  mkdir -p "$out"
  nice -n 10 lmp -in lammps_inputs/giip_cuzr_quench.lmp -var outdir "$out" -var rate "$1" \
    -var seed "$2" -var n_half 400 -var t_mid 1400 -var t_end 500 -var hold_ps 2 \
    -var rate_fast 3e14 -var dt_ps 0.002 -log "$out/log.lammps" -screen none
  echo "rate $1 seed $2: $(grep -c . "$out/cuzr_final.dump") dump lines"
}
for s in "${seeds[@]}"; do
  run 3e13 "$s" &
  run 3e14 "$s"
  run 1e14 "$s"
  wait
done
