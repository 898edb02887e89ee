"""Lesson 02: the NumPy batch norm of the solution against PyTorch's, on the CPU.

    python benchmarks/bench_02_batchnorm.py [--n 256] [--d 1024] [--repeat 7]

Prints the time of each variant (float32, training mode, forward + backward)
and the ratios the lesson quotes.  Timings are the best of ``--repeat`` runs
of an autoranged loop; the machine is shared, so compare ratios within one
run rather than absolute times between runs.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._notebook import load_solutions, parser, write_record  # noqa: E402
from helpers.timing import best_time, format_seconds, load_warning  # noqa: E402


def main(argv=None) -> int:
    args = parser(__doc__, "02_benchmark", n=256, d=1024).parse_args(argv)

    sol = load_solutions("02_bn_forward_backward")
    fwd, bwd, alt = (
        sol["batchnorm_forward"],
        sol["batchnorm_backward"],
        sol["batchnorm_backward_alt"],
    )
    rng = np.random.default_rng(0)
    x = (5 * rng.standard_normal((args.n, args.d)) + 12).astype(np.float32)
    gamma, beta = np.ones(args.d, np.float32), np.zeros(args.d, np.float32)
    dout = rng.standard_normal((args.n, args.d)).astype(np.float32)
    _, cache = fwd(x, gamma, beta)

    xt = torch.from_numpy(x).requires_grad_()
    gt = torch.ones(args.d, requires_grad=True)
    bt = torch.zeros(args.d, requires_grad=True)
    dt = torch.from_numpy(dout)

    def torch_step():
        F.batch_norm(xt, None, None, gt, bt, training=True).backward(dt)

    def numpy_alt():
        _, c = fwd(x, gamma, beta)
        alt(dout, c)

    def numpy_staged():
        _, c = fwd(x, gamma, beta)
        bwd(dout, c)

    cores = os.cpu_count() or 1
    results = {}
    for threads in sorted({1, cores}):
        torch.set_num_threads(threads)
        results[f"torch forward+backward ({threads} thread{'s' * (threads > 1)})"] = (
            best_time(torch_step, repeat=args.repeat)
        )
    results["numpy forward+backward_alt"] = best_time(numpy_alt, repeat=args.repeat)
    results["numpy forward+backward (staged)"] = best_time(
        numpy_staged, repeat=args.repeat
    )
    results["numpy backward (staged) alone"] = best_time(
        lambda: bwd(dout, cache), repeat=args.repeat
    )
    results["numpy backward_alt alone"] = best_time(
        lambda: alt(dout, cache), repeat=args.repeat
    )

    print(
        f"lesson 02 benchmark: N={args.n}, D={args.d}, float32 | "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"torch {torch.__version__}, {cores} CPU core(s) | best of {args.repeat}"
    )
    busy = load_warning()  # the same warning as the lesson's timing cell
    if busy:
        print(f"  {busy}")
    for name, seconds in results.items():
        print(f"  {name:40s} {format_seconds(seconds):>10s}")
    torch_1 = results["torch forward+backward (1 thread)"]
    torch_all = results[f"torch forward+backward ({cores} thread{'s' * (cores > 1)})"]
    ours = results["numpy forward+backward_alt"]
    speedup = (
        results["numpy backward (staged) alone"] / results["numpy backward_alt alone"]
    )
    print(
        f"  numpy f+b_alt / torch f+b (1 thread):  {ours / torch_1:.2f}x  (goal <= 2)"
    )
    print(f"  numpy f+b_alt / torch f+b ({cores} threads): {ours / torch_all:.2f}x")
    print(f"  backward_alt speed-up over staged:      {speedup:.2f}x  (goal >= 1.5)")
    if args.record:  # the numbers lesson 02 quotes (helpers/quotes.py)
        write_record(args.record, "02_benchmark", vars(args), results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
