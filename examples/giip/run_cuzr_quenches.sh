#!/usr/bin/env bash
# The three Cu50Zr50 quenches of the GIIP example, kept small for a shared 2-core machine:
# 800 atoms, 2 fs timestep, 2 ps liquid at 2000 K, 2000 -> 1400 K at 3e14 K/s, then
# 1400 -> 500 K at 3e14, 1e14 or 3e13 K/s (a 10x span). Serial LAMMPS runs, niced; the
# slowest rate runs beside the two faster ones (~30 min on a loaded machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
run() {
  local out=out/giip/cuzr/rate_$1
  mkdir -p "$out"
  nice -n 10 lmp -in lammps_inputs/giip_cuzr_quench.lmp -var outdir "$out" -var rate "$1" \
    -var n_half 400 -var t_mid 1400 -var t_end 500 -var hold_ps 2 -var rate_fast 3e14 \
    -var dt_ps 0.002 -log "$out/log.lammps" -screen none
  echo "rate $1: $(grep -c . "$out/cuzr_final.dump") dump lines"
}
run 3e13 &
run 3e14
run 1e14
wait
