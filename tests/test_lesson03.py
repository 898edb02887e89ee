"""Notebook 03's checks: the right module passes, torch's own too, stubs are "not yet".

Each classic mistake's message: tests/mutants/lesson03.py, via test_mutants.py.
"""

from __future__ import annotations

from helpers import checks

from .mutants import lesson03 as m

RIGHT = m.scratch_class()


def test_a_pytorch_exact_module_passes_and_torch_itself_too(learner_mode):
    import torch

    assert checks.scratch_batchnorm(RIGHT, quiet=True)

    class TorchBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
        """PyTorch's own implementation, for 2-, 3- and 4-D input."""

        def _check_input_dim(self, x):
            if x.dim() not in (2, 3, 4):
                raise ValueError("2-, 3- or 4-D input")

    # torch raises RuntimeError on a wrong channel count; everything else matches
    report = checks.scratch_batchnorm(TorchBatchNorm, quiet=True)
    failed = [r.name for r in report if not r.passed]
    assert failed == ["ScratchBatchNorm wrong channels"], report.lines()


def test_a_one_pass_variance_passes(learner_mode):
    """E[x^2] - mean^2 in float64 is right: the input gradient's tolerance comes
    from the problem's scale (|dout| |gamma| / sigma), not from max |dx|, which
    is tiny for a batch of two (issue 28)."""
    report = checks.scratch_batchnorm(m.scratch_class(one_pass=True), quiet=True)
    assert report, report.lines()


def test_right_folding_passes(learner_mode):
    assert checks.fold_batchnorm(m.fold_variant(), quiet=True)


def stub(*args, **kwargs):
    raise NotImplementedError("stub")


def test_stubs_say_not_yet_once(learner_mode):
    class Stub(torch_module()):
        def __init__(self, *args, **kwargs):
            raise NotImplementedError("stub")

    for report in (checks.scratch_batchnorm(Stub), checks.fold_batchnorm(stub)):
        assert report.verdicts == ["not yet"]


def torch_module():
    import torch

    return torch.nn.Module
