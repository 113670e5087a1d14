#!/usr/bin/env bash
# The accuracy benchmarks of issue #4: exact references, then one VMC run per case, then the table.
#   bash benchmarks/accuracy/run.sh                   # every case (each sized for about 20 minutes on 2 cores)
#   bash benchmarks/accuracy/run.sh tfi4x4_g3_k3_nir  # one case
# Outputs: results/benchmarks/accuracy/<case>.csv (per step), <case>_summary.csv, the table
# results/benchmarks/accuracy.csv and the per-step rows of all cases accuracy_training.csv
# (benchmarks/accuracy/collect.py), and figures/accuracy_*.png (benchmarks/accuracy/plot.py).
set -euo pipefail
here=benchmarks/accuracy
out=results/benchmarks/accuracy
mkdir -p "$out"
[ -f "$out/ed_tfi4x4_g3.csv" ] || nirbench ed --model tfi --lx 4 --ly 4 --bc periodic --g 3.0 --states 3 --out "$out/ed_tfi4x4_g3.csv"
[ -f "$out/ed_tfi4x4_g1.csv" ] || nirbench ed --model tfi --lx 4 --ly 4 --bc periodic --g 1.0 --states 3 --out "$out/ed_tfi4x4_g1.csv"
[ -f "$out/ed_j1j2_4x4.csv" ] || nirbench ed --model j1j2 --lx 4 --ly 4 --bc periodic --j2 0.5 --states 1 --out "$out/ed_j1j2_4x4.csv"
# 6x6 open, g = 1: no ED at 36 sites; DMRG (about 3 minutes on one core) and its chi -> infinity extrapolation
[ -f "$out/dmrg_tfi6x6open_g1.csv" ] || nirbench dmrg --model tfi --lx 6 --ly 6 --bc open --g 1.0 --states 3 \
    --chi 16 32 64 96 128 --threads 1 --out "$out/dmrg_tfi6x6open_g1.csv"
[ -f "$out/dmrg_tfi6x6open_g1_extrapolated.csv" ] || nirbench extrapolate --in "$out/dmrg_tfi6x6open_g1.csv" \
    --out "$out/dmrg_tfi6x6open_g1_extrapolated.csv"
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(tfi4x4_g3_k3_nir tfi4x4_g1_k3_nir j1j2_4x4_k1_rescnn_nir tfi6x6open_g1_k3_nir tfi6x6open_g1_k3_mcmc)
for case in "${cases[@]}"; do
    nirbench vmc --config "$here/$case.yaml" --out "$out/$case.csv" --checkpoint-dir "$out/checkpoints/$case" --resume
    # honest error bars and V-score of the final NQS, and its exact energy where the sector can be enumerated
    nirbench evaluate --checkpoint "$out/checkpoints/$case" --out "$out/${case}_evaluation.csv"
done
python "$here/collect.py" --runs "$out" --out results/benchmarks/accuracy.csv \
    --training results/benchmarks/accuracy_training.csv
python "$here/plot.py" --training results/benchmarks/accuracy_training.csv --figures figures
