"""The ninth set's (part c) additions to the independent reference (no helpers.checks).

``install(reference)`` is called by run.py after round 3's ``reference3.install``:

- the lesson 08 capstone verifier (graded cell ``sync_bn_layer``) is round 4 part b's
  ``_install4`` (tests/unseen/round4/part_b/reference3.py), LOADED from the checkout,
  not copied (as the seventh set, part c, did);
- two properties this set's entries break that no earlier verifier looks at:
  NoisyBatchNorm's eval mode with a weight and bias that are not 1 and 0 (round 2's
  verifier compares eval mode with a fresh nn.BatchNorm1d only), and
  gradient_change returning two Python floats (round 2's verifier converts them).
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn


def _round4b():
    repo = None
    for i, a in enumerate(sys.argv):
        if a == "--repo" and i + 1 < len(sys.argv):
            repo = sys.argv[i + 1]
        elif a.startswith("--repo="):
            repo = a.split("=", 1)[1]
    for root in ([Path(repo)] if repo else []) + [Path("/work/main")]:
        path = root / "tests/unseen/round4/part_b/reference3.py"
        if path.exists():
            spec = importlib.util.spec_from_file_location("reference3_round4b", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise SystemExit("tests/unseen/round4/part_b/reference3.py not found")


def install(reference):
    _round4b()._install4(reference)
    P, _call = reference.Problems, reference._call
    V = reference.VERIFIERS
    now = dict(V)

    def plus(name, extra):
        def run(space, sol):
            p = P(now[name](space, sol))
            try:
                extra(p, space, sol)
            except Exception as exc:  # noqa: BLE001
                p.append(f"extra reference check (set 9c) failed: {type(exc).__name__}: {exc}")
            return p
        return run

    def noisy_eval_affine(p, space, sol):
        gen = torch.Generator().manual_seed(23)
        c = 4
        mine, ok = _call(p, "construct (eval affine)", space["NoisyBatchNorm"], c)
        if not ok:
            return
        mine = mine.double()
        ref = nn.BatchNorm1d(c).double()
        w = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
        b = torch.randn(c, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            for m in (mine, ref):
                m.weight.copy_(w), m.bias.copy_(b)
            for _ in range(3):
                x = torch.randn(8, c, generator=gen, dtype=torch.float64) * 2 + 1
                _, ok = _call(p, "train step (eval affine)", mine, x)
                if not ok:
                    return
                ref(x)
        mine.eval(), ref.eval()
        x = torch.randn(5, c, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            out, ok = _call(p, "eval (eval affine)", mine, x)
            if ok:
                p.close("eval output with weight != 1, bias != 0", out, ref(x), rtol=1e-9)

    def gradient_change_floats(p, space, sol):
        model = reference._mlp(3, True).train()
        x, y = reference._data(3)
        got, ok = _call(p, "gradient_change (types)", space["gradient_change"], copy.deepcopy(model), x, y, 3, 0.5)
        if ok:
            p.check(f"gradient_change returned {type(got).__name__} of "
                    f"{[type(v).__name__ for v in got] if isinstance(got, (tuple, list)) else '?'}, "
                    "expected two Python floats",
                    isinstance(got, (tuple, list)) and len(got) == 2 and all(isinstance(v, float) for v in got))

    V["noisy_batchnorm"] = plus("noisy_batchnorm", noisy_eval_affine)
    V["gradient_change"] = plus("gradient_change", gradient_change_floats)
