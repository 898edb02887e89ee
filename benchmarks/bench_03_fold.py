"""Lesson 03: inference time with batch norm folded into the previous layers (CPU).

    python benchmarks/bench_03_fold.py [--batch 64] [--repeat 7]

Builds a small VGG-style CNN (conv -> BN -> ReLU blocks, as in lesson 05) and
an MLP (linear -> BN -> ReLU), folds every BN layer with the solution's
``fold_batchnorm``, checks the outputs agree, and prints eval-mode inference
times and the speed-up.  Compare ratios within one run: the machine is shared.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._notebook import load_solutions, parser, write_record  # noqa: E402
from helpers.timing import best_time, format_seconds, load_warning  # noqa: E402


def vgg_like():
    layers, c_in = [], 3
    for c_out in (32, 64, 128):
        layers += [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        c_in = c_out
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 4 * 4, 10))


def mlp():
    return nn.Sequential(
        nn.Linear(784, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(),
        nn.Linear(256, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(),
        nn.Linear(256, 10),
    )  # fmt: skip


def randomise_statistics(model):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_()
    return model.eval()


def folded(model, fold):
    layers = list(model)
    out = []
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            continue
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(nxt, nn.modules.batchnorm._BatchNorm):
            layer = fold(layer, nxt)
        out.append(layer)
    return nn.Sequential(*out).eval()


def main(argv=None) -> int:
    args = parser(__doc__, "03_benchmark", batch=64).parse_args(argv)
    fold = load_solutions("03_inference_running_stats")["fold_batchnorm"]
    torch.manual_seed(0)
    cores = os.cpu_count() or 1
    print(
        f"lesson 03 benchmark: eval-mode inference, batch {args.batch}, float32, "
        f"torch {torch.__version__}, {cores} CPU core(s), best of {args.repeat}"
    )
    busy = load_warning()  # the same warning as the lesson's timing cell
    if busy:
        print(f"  {busy}")
    cases = [
        ("VGG-style CNN, 32x32 images", vgg_like(), (args.batch, 3, 32, 32)),
        ("MLP 784-256-256-10", mlp(), (args.batch, 784)),
    ]
    results = {}
    for name, model, shape in cases:
        model = randomise_statistics(model)
        fast = folded(model, fold)
        x = torch.randn(*shape)
        with torch.no_grad():
            error = (model(x) - fast(x)).abs().max().item()
            for threads in sorted({1, cores}):
                torch.set_num_threads(threads)
                t_bn = best_time(lambda m=model, x=x: m(x), repeat=args.repeat)
                t_fold = best_time(lambda m=fast, x=x: m(x), repeat=args.repeat)
                results.setdefault(name, {})[str(threads)] = {
                    "with BN": t_bn,
                    "folded": t_fold,
                    "max difference": error,
                }
                print(
                    f"  {name:28s} {threads} thread(s): "
                    f"with BN {format_seconds(t_bn):>9s}"
                    f", folded {format_seconds(t_fold):>9s}, speed-up "
                    f"{t_bn / t_fold:.2f}x (max |diff| {error:.1e})"
                )
    if args.record:  # the numbers lesson 03 quotes (helpers/quotes.py)
        write_record(args.record, "03_benchmark", vars(args), results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
