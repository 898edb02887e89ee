"""Notebook 04's checks: right answers pass, stubs are "not yet", the record.

Each classic mistake's message: tests/mutants/lesson04.py, via test_mutants.py.
"""

from __future__ import annotations

import pytest

from helpers import checks

from .mutants import lesson04 as m


def test_right_answers_pass(learner_mode):
    assert checks.batch_renorm_backward(m.renorm_forward, m.renorm_backward, quiet=True)
    assert checks.batch_renorm(m.renorm_class(), m.renorm_forward, quiet=True)


def test_the_paper_schedule_passes_and_the_check_knows_the_paper_values(learner_mode):
    def schedule(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
        t = max(0.0, step - warmup)
        return (  # a ramp of 0 steps: the final value right after warmup (12.5 too)
            1.0 + (rmax_final - 1.0) * (min(1.0, t / r_steps) if r_steps else t > 0),
            dmax_final * (min(1.0, t / d_steps) if d_steps else t > 0),
        )

    assert checks.renorm_schedule(schedule, quiet=True)
    points = {  # step -> (rmax, dmax), as the paper states them
        0: (1.0, 0.0),
        5000: (1.0, 0.0),
        12500: (1.0 + 2.0 * 7500 / 35000, 5.0 * 7500 / 20000),
        25000: (1.0 + 2.0 * 20000 / 35000, 5.0),
        40000: (3.0, 5.0),
        100000: (3.0, 5.0),
    }
    for step, values in points.items():  # the curve the check samples
        assert checks.lesson04._paper(step) == pytest.approx(values, abs=1e-12)


def stub(*args, **kwargs):
    raise NotImplementedError("stub")


def test_stubs_say_not_yet_once(learner_mode):
    for report in (
        checks.batch_renorm_backward(m.renorm_forward, stub),
        checks.batch_renorm(stub, m.renorm_forward),
        checks.renorm_schedule(stub),
    ):
        assert report.verdicts == ["not yet"], report.lines()


def test_reference_results_are_labelled_with_how_they_were_made():
    from helpers import runs

    stored = runs.reference("04_renorm")
    assert stored is not None
    made = stored["provenance"]
    assert made["mode"] == "full" and made["torch"] and made["date"]
    results = stored["results"]
    assert set(results) == {"batch 2", "batch 4", "batch 8", "batch 32", "grouped 2×4"}
    for by_norm in results.values():
        assert set(by_norm) == {"bn", "renorm", "groupnorm"}
        assert all(len(accs) == 5 for accs in by_norm.values())  # five seeds


def test_one_run_gives_one_number_in_every_record():
    """Seed 0 of a setting is the same run wherever it is recorded: no evaluation
    in between re-estimated its statistics (the old records differed by 2 points)."""
    from helpers import runs

    renorm = runs.reference("04_renorm")["results"]
    sweep = runs.reference("04_small_batches")["results"]
    for size in ("2", "4", "8", "32"):
        assert sweep[size]["accuracy"] == renorm[f"batch {size}"]["bn"][0], size
    modes_bn = runs.reference("04_modes_bn")["results"]
    modes_renorm = runs.reference("04_modes_renorm")["results"]
    assert modes_bn["eval mode"] == renorm["grouped 2×4"]["bn"][0]
    assert modes_renorm["eval mode"] == renorm["grouped 2×4"]["renorm"][0]


def test_a_degenerate_output_is_described_not_blamed_on_one_cause(learner_mode):
    """r = 1 and d = 0 everywhere (plain batch norm) fits many mistakes: the
    check says what it read, names no single change of Algorithm 1."""
    report = checks.batch_renorm(
        m.renorm_class(apply_rd=False), m.renorm_forward, quiet=True
    )
    (line,) = [r.detail for r in report if r.name == "BatchRenorm NC output"]
    assert "r = 1 and d = 0 in every feature" in line
    for cause in ("not clipped", "unbiased", "update", "divided by sigma_B"):
        assert cause not in line, line


def test_the_stage_that_differs_first_is_the_one_blamed(learner_mode):
    """A wrong d with a right r: the reading blames d alone, in numbers."""
    report = checks.batch_renorm(
        m.renorm_class(d_by_batch_std=True), m.renorm_forward, quiet=True
    )
    (line,) = [r.detail for r in report if r.name == "BatchRenorm NC output"]
    assert "d is divided by sigma_B" in line and "r is off" not in line, line
    report = checks.batch_renorm(
        m.renorm_class(d_sign=-1.0), m.renorm_forward, quiet=True
    )
    assert not any("r is off" in r.detail for r in report), report.lines()


def test_final_values_are_called_ignored_only_when_the_defaults_come_out(learner_mode):
    # right for the paper's ramps (r_steps > d_steps), but both values final once
    # the r ramp ends: the custom finals are used, so "ignored" would be a wrong cause
    def schedule(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
        t = max(0.0, step - warmup)
        if r_steps and t >= r_steps:
            return rmax_final, dmax_final
        r = 1.0 + (rmax_final - 1.0) * min(1.0, t / r_steps if r_steps else 1.0)
        return r, dmax_final * min(1.0, t / d_steps if d_steps else 1.0)

    text = checks.renorm_schedule(schedule, quiet=True).lines()
    assert "step 10: (2.0, 1.0), not (2.0, 0.5)" in text and "ignored" not in text, text


def test_a_training_step_that_breaks_the_buffers_is_told_not_a_crash(learner_mode):
    # eval mode is judged after one training step and the state set again: a forward
    # that rebinds running_std to None must get a message, not "a bug in the course"
    base = m.renorm_class()

    class Broken(base):
        def forward(self, x):
            out = super().forward(x)
            if self.training:
                self.running_std = None
            return out

    text = checks.batch_renorm(Broken, m.renorm_forward, quiet=True).lines()
    assert "a bug in the course" not in text and "BatchRenorm" in text, text


def test_buffers_registered_with_a_row_shape_are_said_at_registration(learner_mode):
    """Unseen round 16's wrong cause: torch.zeros(1, C) buffers broadcast right;
    registration said "should start as [0.0, ...]" (they do) and a later line
    guessed keepdims=True. The shape is said where it is made."""
    torch = pytest.importorskip("torch")
    base = m.renorm_class()

    class Rows(base):
        def __init__(self, num_features, *args, **kwargs):
            super().__init__(num_features, *args, **kwargs)
            self.register_buffer("running_mean", torch.zeros(1, num_features))
            self.register_buffer("running_std", torch.ones(1, num_features))

    text = checks.batch_renorm(Rows, m.renorm_forward, quiet=True).lines()
    assert "running_mean has shape (1, 5), not (5,): one value per feature" in text
    assert "should start as" not in text and "keepdims=True?" not in text, text
