#!/usr/bin/env bash
# The 2D Lennard-Jones GIIP analysis (lj2d_build.py + lj2d_giip.py) on several samples:
# the same construction with other random cuts (--seed). Writes examples/giip/lj2d_seeds.txt
# (one row per seed: defect atoms, clusters, r^2 of the coordination number against c1 and
# against alpha'). ~3 min per seed on one idle core.
#
#   bash examples/giip/lj2d_seeds.sh [seed ...]        (default: 1 2 3 4 5 6 7 8 9 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3 4 5 6 7 8 9 10)
for s in "${seeds[@]}"; do
  out=out/giip/lj2d_seeds/s$s
  mkdir -p "$out"
  nice -n 10 .venv/bin/python examples/giip/lj2d_build.py --seed "$s" --outdir "$out" > "$out/build.log"
  nice -n 10 .venv/bin/python examples/giip/lj2d_giip.py --dump "$out/lj2d_final.dump" \
    --outdir "$out" --figures "$out" --n-train 800 --window 36 --n-random 800 \
    --processes 1 > "$out/giip.log" 2>&1
  echo "seed $s: $(grep 'c1) =' "$out/lj2d_results.txt")"
done
.venv/bin/python - "${seeds[@]}" <<'PY'
import json, sys
import numpy as np
rows = [json.load(open(f"out/giip/lj2d_seeds/s{s}/lj2d_summary.json")) for s in sys.argv[1:]]
lines = ["GIIP, 2D LJ crystal: the same construction with other random cuts (lj2d_seeds.sh)",
         "800 training LAEs (100 lowest + 700 highest energy), eps 1, clusters of diameter <= 1",
         "seed | atoms | eligible | not 6-coordinated | clusters | max diameter | "
         "r^2(CN ~ c1) | r^2(CN ~ alpha') | best r^2(strain of 6-coord. ~ c_k, k<=4)"]
for s, r in zip(sys.argv[1:], rows):
    lines.append(f"{s} | {r['atoms']} | {r['eligible']} | {r['not_6_coordinated']} | "
                 f"{r['clusters']} | {r['max_cluster_diameter']:.3f} | {r['r2_cn_c1']:.3f} | "
                 f"{r['r2_cn_alpha_prime']:.3f} | {max(r['r2_strain_ck']):.3f}")
c1 = np.array([r["r2_cn_c1"] for r in rows])
lines.append(f"r^2(CN ~ c1): median {np.median(c1):.3f}, >= 0.9 on {np.sum(c1 >= 0.9)} of "
             f"{len(c1)} samples")
text = "\n".join(lines)
print(text)
open("examples/giip/lj2d_seeds.txt", "w").write(text + "\n")
PY
