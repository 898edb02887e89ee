"""The ninth set's (part a) additions to the independent reference: round2's
reference.py (imported by run.py from the checkout) with round3's additions
(reference3.py, IMPORTED from /work/main/tests/unseen/round3, not copied), plus
the property below that this set's entries break and neither looks at. No
helpers.checks anywhere.

- batchnorm_forward returns exactly two things, (out, cache), as its docstring
  says (round2's verifier reads only res[0]).
"""

from __future__ import annotations

import sys

import numpy as np

ROUND3 = "/work/main/tests/unseen/round3"


def install(reference):
    if ROUND3 not in sys.path:
        sys.path.append(ROUND3)
    import reference3

    reference3.install(reference)
    P, _call = reference.Problems, reference._call
    V = reference.VERIFIERS
    old = dict(V)

    def forward_pair(space, sol):
        p = P(old["batchnorm_forward"](space, sol))
        rng = np.random.default_rng(91)
        x = rng.normal(1.0, 2.0, (6, 3))
        res, ok = _call(p, "forward (pair check)", space["batchnorm_forward"], x, np.ones(3), np.zeros(3))
        if ok:
            p.check(f"returned {type(res).__name__} of {len(res) if isinstance(res, (tuple, list)) else '?'} values, "
                    "not (out, cache)", isinstance(res, (tuple, list)) and len(res) == 2)
        return p

    V["batchnorm_forward"] = forward_pair
