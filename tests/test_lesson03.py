"""Notebook 03's checks: the right module passes, each classic mistake is named."""

from __future__ import annotations

import pytest

from helpers import checks

from . import mutants as m

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


CASES = [("scratch", k, v) for k, v in m.SCRATCH.items()] + [
    ("fold", k, v) for k, v in m.FOLD.items()
]
IDS = [f"{kind}: {name}" for kind, name, _ in CASES]


def run(kind, fn, **kw):
    check = checks.scratch_batchnorm if kind == "scratch" else checks.fold_batchnorm
    return check(fn, **kw)


@pytest.mark.parametrize("kind, name, case", CASES, ids=IDS)
def test_mistake_gets_its_specific_message(kind, name, case, learner_mode, capsys):
    fn, expected = case
    report = run(kind, fn)
    assert not report, f"{name} passed"
    assert expected in report.lines(), report.lines()
    assert "Traceback" not in capsys.readouterr().out


@pytest.mark.parametrize("kind, name, case", CASES, ids=IDS)
def test_mistake_fails_while_grading(kind, name, case, grading_mode):
    with pytest.raises(checks.CheckFailed):
        run(kind, case[0], quiet=True)
