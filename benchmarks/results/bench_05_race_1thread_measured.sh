#!/bin/bash
# The one-thread race of 2026-12-06 (data/reference/05_race.json, "one_thread"):
# the plain loop and the fast recipe side by side, each with one thread, pinned
# to its own core of the 2-core machine, run from the repository root.
cd "$(dirname "$0")/../.." || exit 1
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE BNCOURSE_CIFAR10=../shared/data/cifar10_jpeg.npz
COMMON="--epochs 14 --widths 32,64,128,256 --bf16 --batch 256 --lr 0.2 --skip-pipeline --stop-at-target --threads 1"
R=benchmarks/results/bench_05_race_1thread_measured
nice -n 10 taskset -c 0 .venv/bin/python benchmarks/bench_05_cifar.py $COMMON --nets plain \
  --out ${R}_plain.json > ${R}_plain.log 2>&1 &
nice -n 10 taskset -c 1 .venv/bin/python benchmarks/bench_05_cifar.py $COMMON --nets fast \
  --out ${R}_fast.json > ${R}_fast.log 2>&1 &
wait
# the race, written into the record beside the two-thread one
.venv/bin/python benchmarks/bench_05_cifar.py --race-from ${R}_fast.json ${R}_plain.json \
  --record data/reference/05_race.json --record-key one_thread \
  --note "benchmarks/results/bench_05_race_1thread_measured.sh: side by side, each pinned to its own core (taskset), OMP_NUM_THREADS=1, nice -n 10; the engine as shipped after lookahead's deletion"
