"""Notebook 03's checks: the right module passes, torch's own too, stubs are "not yet".

Each classic mistake's message: tests/mutants/lesson03.py, via test_mutants.py.
"""

from __future__ import annotations

import pytest

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
    wrong_channels = ["ScratchBatchNorm wrong channels"]  # in training and in eval
    assert failed == [*wrong_channels, wrong_channels[0] + " (eval)"], report.lines()


def test_a_one_pass_variance_passes(learner_mode):
    """E[x^2] - mean^2 in float64 is right: the input gradient's tolerance comes
    from the problem's scale (|dout| |gamma| / sigma), not from max |dx|, which
    is tiny for a batch of two (issue 28)."""
    report = checks.scratch_batchnorm(m.scratch_class(one_pass=True), quiet=True)
    assert report, report.lines()


def test_a_swapped_var_mean_is_not_read_as_the_running_mean(learner_mode):
    """Round 15's wrong cause: (mean, var) = torch.var_mean(x), which returns the
    variance first.  At momentum=None's first step the running mean after the step
    is that same "mean": it was named as the cause ("the running mean after the
    step"), which says nothing the learner's own statistic does not; and a scale
    read as sqrt(var + e) with e = -12.5 was said to miss eps (a negative e that
    names nothing is no eps slip)."""
    report = checks.scratch_batchnorm(m.scratch_class(swapped=True), quiet=True)
    lines = report.lines()
    assert not report and "the running mean after the step" not in lines, lines
    assert "not eps" not in lines, lines


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


# --------------------------------------------------------------------------
# the first thing that differs is blamed; a degenerate answer names no cause
# (issue 28: wrong answers nobody listed, and the wrong causes of round 2)
# --------------------------------------------------------------------------


def details(report, name) -> str:
    return " | ".join(r.detail for r in report if r.name == f"ScratchBatchNorm {name}")


def scratch(**mistake):
    return checks.scratch_batchnorm(m.scratch_class(**mistake), quiet=True)


def test_a_buffer_that_starts_wrong_is_told_its_start(learner_mode):
    """running_var zeroed at construction: the batch statistic averaged in is
    right, its start is not (it was read as 'a statistic off by an offset')."""
    seen = details(scratch(start_var=0.0), "(N, C)")
    assert "before the first step: it starts at 1" in seen, seen
    assert "offset" not in seen and "averages in" not in seen, seen


def test_a_buffer_left_unchanged_at_step_one_is_read_from_later_steps(learner_mode):
    """Keras's momentum with momentum=None leaves the buffer as it is at step 1
    (weight 1 on the old value): that is no proof that it is never updated."""
    seen = details(scratch(momentum_on="old"), "momentum=None")
    assert "momentum is applied to the old value" in seen, seen
    assert "update it in training mode" not in seen, seen


def test_running_statistics_in_training_are_not_blamed_on_the_variance(learner_mode):
    """With momentum=None running_var after step 1 is the unbiased variance:
    both readings are given, neither is named alone."""
    seen = details(scratch(train_on_running=True), "momentum=None")
    assert "running_var after the step" in seen, seen


def test_an_output_left_unnormalised_is_not_named_running_statistics(learner_mode):
    """out = gamma * x + beta at step 1 uses mean 0 and scale 1, which are also
    the buffers' start: the check lists both, it does not pick one."""
    seen = details(scratch(normalise=False), "(N, C)")
    assert "0 (nothing is subtracted)" in seen, seen


def test_an_update_without_decay_is_read_as_one(learner_mode):
    """running += momentum * batch: one edit of PyTorch's update, named where
    it is (at step 1 the old values are all 1, which reads as an offset)."""
    seen = details(scratch(decay_old=False), "(N, C)")
    assert "`old` where `(1 - momentum) * old` belongs" in seen, seen
    assert "offset" not in seen and "Bessel" not in seen, seen


def test_eps_stored_before_or_after_bessels_factor_is_named(learner_mode):
    for where in ("eps", "eps first"):
        seen = details(scratch(running_var=where), "(N, C)")
        assert "eps is stored in running_var" in seen, (where, seen)


def test_float32_arithmetic_is_not_blamed_on_the_statistics(learner_mode):
    import torch

    report = scratch(compute_dtype=torch.float32)
    seen = details(report, "track_running_stats=False")
    assert "float32" in seen and "biased" not in seen, seen


def test_a_reset_must_work_in_place(learner_mode):
    seen = details(scratch(reset_in_place=False), "reset_*()")
    assert "replaced running_mean by a new tensor: reset it in place" in seen, seen


def test_a_fold_without_the_layers_own_bias_is_named(learner_mode):
    report = checks.fold_batchnorm(m.fold_variant(own_bias=False), quiet=True)
    seen = " | ".join(r.detail for r in report if r.name == "fold_batchnorm conv")
    assert "the layer's own bias b is left out" in seen, seen


def test_a_module_built_for_four_channels_only_fails_the_visible_check(learner_mode):
    """The hidden test builds ScratchBatchNorm(3, momentum=0.5): the visible
    check does not build 4 channels only."""
    base = m.scratch_class()

    class FourOnly(base):
        def __init__(self, num_features, **kwargs):
            super().__init__(4, **kwargs)

    assert not checks.scratch_batchnorm(FourOnly, quiet=True)


def test_buffers_never_written_back_are_told_so_and_nothing_about_momentum(
    learner_mode,
):
    import torch

    class NeverWritten(m.scratch_class()):
        def forward(self, x):
            kept = [self.running_mean.clone(), self.running_var.clone()]
            out = super().forward(x)
            with torch.no_grad():
                self.running_mean.copy_(kept[0])
                self.running_var.copy_(kept[1])
            return out

    seen = details(checks.scratch_batchnorm(NeverWritten, quiet=True), "(N, C)")
    assert "did not change in 4 training step(s)" in seen, seen
    assert "momentum" not in seen, seen


def test_a_count_that_turns_float_fails_as_the_hidden_test_does(learner_mode):
    """The hidden test compares num_batches_tracked with tensor(7), a long."""

    class FloatCount(m.scratch_class()):
        def forward(self, x):
            out = super().forward(x)
            if self.training:
                self.num_batches_tracked = self.num_batches_tracked.float()
            return out

    seen = details(checks.scratch_batchnorm(FloatCount, quiet=True), "(N, C)")
    assert "(a long)" in seen, seen


def test_buffers_created_in_the_first_forward_are_said_not_a_crash(learner_mode):
    """running_mean/var None in __init__, made in forward: the check itself used
    to fail (old[...] on None) instead of saying what is wrong."""
    import torch
    from torch import nn

    class Lazy(nn.Module):
        def __init__(
            self, c, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True
        ):
            super().__init__()
            self.eps, self.running_mean, self.running_var = eps, None, None
            self.weight = nn.Parameter(torch.ones(c))
            self.bias = nn.Parameter(torch.zeros(c))
            self.register_buffer("num_batches_tracked", torch.tensor(0))

        def forward(self, x):
            m, v = x.mean(0), x.var(0, unbiased=False)
            if self.training:
                with torch.no_grad():
                    old = 0 if self.running_mean is None else self.running_mean
                    self.running_mean = 0.9 * old + 0.1 * m
                    self.num_batches_tracked += 1
                    self.running_var = 0.9 + 0.1 * x.var(0)
            else:
                m, v = self.running_mean, self.running_var
            return (x - m) / torch.sqrt(v + self.eps) * self.weight + self.bias

    seen = checks.scratch_batchnorm(Lazy, quiet=True).lines()
    assert "the check itself failed" not in seen, seen
    assert "not a tensor before this step" in seen, seen


def test_an_integer_running_var_is_said_as_its_dtype(learner_mode):
    """Unseen round 16's wrong cause: running_var = torch.full((C,), 1) is int64,
    the first update then fails inside torch; the registration says so first."""
    torch = pytest.importorskip("torch")
    base = m.scratch_class()

    class IntegerVar(base):
        def __init__(self, num_features, eps=1e-5, momentum=0.1, **kwargs):
            super().__init__(num_features, eps, momentum, **kwargs)
            self.register_buffer("running_var", torch.full((num_features,), 1))

    text = checks.scratch_batchnorm(IntegerVar, quiet=True).lines()
    assert "running_var is torch.int64, not torch.float32 as in PyTorch's" in text
    # the untrained eval output: int64 + eps is float32 in PyTorch, said as such
    assert "an integer tensor plus a float in PyTorch" in text, text


def test_a_layer_without_weight_or_bias_is_refused_with_a_type_error(learner_mode):
    """The exercise asks for a TypeError for any layer but Linear and Conv2d. The
    solution read layer.bias before its type test, so nn.Identity raised an
    AttributeError (found by round 18's writer against round 17's reference)."""
    pytest.importorskip("torch")
    base = m.fold_variant()

    def reads_bias_first(layer, bn):
        layer.bias  # noqa: B018 - the slip: an attribute read before the type test
        return base(layer, bn)

    text = checks.fold_batchnorm(reads_bias_first, quiet=True).lines()
    assert "nn.Identity         | WRONG   | raised AttributeError" in text
    assert "nn.Identity         | ok" in checks.fold_batchnorm(base, quiet=True).lines()
