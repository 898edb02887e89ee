#!/bin/bash
# job 4: per-epoch CPU-seconds, engine (--nets bn) vs the same-precision plain loop (--nets plain)
# run as REPEATS="1" TWO="engine_r1:bn plain_r1:plain" then REPEATS="2" TWO="plain_r2:plain engine_r2:bn";
# then: python benchmarks/results/05_epoch_parity/collect.py
cd "$(dirname "$0")/../../.." || exit 1  # the repository root
export BNCOURSE_CIFAR10=../shared/data/cifar10_jpeg.npz OMP_WAIT_POLICY=PASSIVE
D=benchmarks/results/05_epoch_parity
C="--epochs 1 --n-train 10000 --widths 32,64,128,256 --bf16 --batch 256 --skip-pipeline"
t() { /usr/bin/time -f "%U %S %e" -o $D/$1.time "${@:2}" > $D/$1.log 2>&1; }
# one thread: side by side, each pinned to its own core, the cores swapped per repeat
for r in ${REPEATS:-1 2}; do
  if [ $r = 1 ]; then a=0; b=1; else a=1; b=0; fi
  OMP_NUM_THREADS=1 t 1t_engine_r$r nice -n 10 taskset -c $a .venv/bin/python benchmarks/bench_05_cifar.py $C --threads 1 --nets bn --out $D/1t_engine_r$r.json &
  OMP_NUM_THREADS=1 t 1t_plain_r$r nice -n 10 taskset -c $b .venv/bin/python benchmarks/bench_05_cifar.py $C --threads 1 --nets plain --out $D/1t_plain_r$r.json &
  wait
done
# two threads: one process at a time, alternating engine, plain, plain, engine
for s in ${TWO:-engine_r1:bn plain_r1:plain plain_r2:plain engine_r2:bn}; do
  OMP_NUM_THREADS=2 t 2t_${s%%:*} nice -n 10 .venv/bin/python benchmarks/bench_05_cifar.py $C --threads 2 --nets ${s##*:} --out $D/2t_${s%%:*}.json
done
date -u > $D/done
