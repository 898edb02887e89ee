"""Lesson 04: wrong batch renormalization (backward pass, module, schedule)."""

from __future__ import annotations

import numpy as np

from . import family


def renorm_forward(
    x, gamma, beta, running_mean, running_std, rmax, dmax, eps=1e-5, r=None, d=None
):
    """The notebook's given NumPy forward pass (not an exercise)."""
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + eps)
    if r is None:
        r = np.clip(std / running_std, 1.0 / rmax, rmax)
    if d is None:
        d = np.clip((mu - running_mean) / running_std, -dmax, dmax)
    x_hat = (x - mu) / std
    y_hat = x_hat * r + d
    return gamma * y_hat + beta, (x_hat, y_hat, std, r, gamma), (r, d)


def renorm_backward(
    dout, cache, *, with_r=True, dgamma_from="y_hat", sum_params=True, mean=True, axis=0
):
    x_hat, y_hat, std, r, gamma = cache
    g = dout * gamma * (r if with_r else 1.0)
    centred = g - (g.mean(axis, keepdims=True) if mean else 0.0)
    dx = (centred - x_hat * (g * x_hat).mean(axis, keepdims=True)) / std
    source = {"y_hat": y_hat, "x_hat": x_hat, "x_hat * r": x_hat * r}[dgamma_from]
    dgamma = (dout * source).sum(0) if sum_params else dout * source
    return dx, dgamma, dout.sum(0)


# fmt: off
RENORM_BACKWARD = {
    "misses the factor r": (lambda d, c: renorm_backward(d, c, with_r=False), "each feature is off by its own factor, 1/(r)"),
    "dgamma from x_hat": (lambda d, c: renorm_backward(d, c, dgamma_from="x_hat"), "dgamma uses x_hat"),
    "dgamma not summed": (lambda d, c: renorm_backward(d, c, sum_params=False), "not summed"),
    "returns None": (lambda d, c: None, "returned None"),
    "dgamma and dbeta returned in each other's place": (lambda d, c: (lambda g: (g[0], g[2], g[1]))(renorm_backward(d, c)), "dgamma holds the expected dbeta and the other way round"),
    "no mean branch": (lambda d, c: renorm_backward(d, c, mean=False), "the branch through the batch mean is off"),
    "means over the features": (lambda d, c: renorm_backward(d, c, axis=1), "dx mixes the features"),
    "dgamma without d": (lambda d, c: renorm_backward(d, c, dgamma_from="x_hat * r"), "dgamma uses x_hat * r;"),
    "float32 cache": (lambda d, c: renorm_backward(d, tuple(a.astype(np.float32) for a in c)), "expect < 5e-09"),
}
# fmt: on


def renorm_class(
    *,
    detach=True,
    clip_r=True,
    clip_d=True,
    std_update="std",
    eval_uses_batch=False,
    attributes=True,
    validate=True,
    momentum_on="new",
    rebind_buffers=False,
    correction=0,
    graph_buffers=False,  # the review's W5: rebinding outside torch.no_grad()
    keep_arguments=True,
    d_by_batch_std=False,
    update_first=False,
    apply_rd=True,
    d_sign=1.0,
    bounds_as_buffers=False,
    fixed_momentum=False,
    eval_keeps_rd=False,
    fixed_eps=False,  # True: the eps passed in is not used (a contract audit's gap)
    batch_guard=False,
    plain_no_update=False,  # r = 1, d = 0: plain batch norm, buffers left alone
    eval_flat=False,  # eval mode's statistics not reshaped for 4-D input
    eval_guard=False,  # round 8's false oks: one value refused in eval mode too,
    grad_only=False,  # and no running update in a training step under no_grad
    rd_after_affine=False,  # round 11's wrong cause: (gamma * x_hat + beta) * r + d
    no_bias=False,  # round 13's wrong cause: no + bias in training mode
    both_bounds=False,  # True: renormalises only when rmax > 1 and dmax > 0 both
    running_if_unclipped=False,  # round 11's false ok: same output, other gradient
    by_running_std=False,  # round 11's wrong cause: (x - mu_B) / running_std + d
    swap_modes=False,  # round 22's wrong cause: `if self.training:` for `if not ...`
    zero_weight=False,  # round 25's false ok: weight starts as zeros (bias line copied)
):
    import torch
    from torch import nn

    class Renorm(nn.Module):
        def __init__(self, num_features, eps=1e-5, momentum=0.01, rmax=1.0, dmax=0.0):
            super().__init__()
            if not keep_arguments:  # the defaults, whatever is passed
                momentum, rmax, dmax = 0.01, 1.0, 0.0
            self.eps, self.momentum = eps if not fixed_eps else 1e-5, momentum
            self._fixed = (rmax, dmax)
            self.rmax, self.dmax = rmax, dmax
            if bounds_as_buffers:  # tensors the training loop cannot set to floats
                del self.rmax, self.dmax
                self.register_buffer("rmax", torch.tensor(float(rmax)))
                self.register_buffer("dmax", torch.tensor(float(dmax)))
            self.weight = nn.Parameter(torch.full((num_features,), 1.0 - zero_weight))
            self.bias = nn.Parameter(torch.zeros(num_features))
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_std", torch.ones(num_features))
            self.num_features = num_features

        def forward(self, x):
            if validate in (True, "2-D") and x.dim() not in (2, 4):
                raise ValueError("rank")  # validate="channels": channels only
            checked = validate != "2-D" or x.dim() == 2  # "2-D": channels of (N, C)
            if validate and checked and x.shape[1] != self.num_features:
                raise ValueError("channels")
            if (
                validate in (True, "2-D")
                and (self.training or eval_guard)
                and x.numel() // x.shape[1] < 2
            ):
                raise ValueError("one value per channel")
            if batch_guard and self.training and x.shape[0] < 2:  # not per channel
                raise ValueError("one example")
            dims = [0] if x.dim() == 2 else [0, 2, 3]
            view = [1, -1] + [1] * (x.dim() - 2)
            rmax, dmax = (self.rmax, self.dmax) if attributes else self._fixed
            if eval_flat:
                view = [-1]
            if not ((self.training != swap_modes) or eval_uses_batch):
                x_hat = (x - self.running_mean.view(view)) / self.running_std.view(view)
                if eval_keeps_rd and hasattr(self, "_rd"):  # the last step's r and d
                    x_hat = x_hat * self._rd[0].view(view) + self._rd[1].view(view)
                return x_hat * self.weight.view(view) + self.bias.view(view)
            mean = x.mean(dims)
            var = x.var(dims, correction=correction)
            std = torch.sqrt(var + self.eps)
            s, m = (std.detach(), mean.detach()) if detach else (std, mean)
            if update_first:  # the buffers moved before r and d are computed
                with torch.no_grad():
                    self.running_mean += self.momentum * (m - self.running_mean)
                    self.running_std += self.momentum * (s - self.running_std)
            r = s / self.running_std
            d = (m - self.running_mean) / (s if d_by_batch_std else self.running_std)
            inside = bool((r == r.clamp(1 / rmax, rmax)).all())
            inside = inside and bool((d == d.clamp(-dmax, dmax)).all())
            if clip_r:
                r = r.clamp(1 / rmax, rmax)
            if clip_d:
                d = d.clamp(-dmax, dmax) if clip_d != "below" else d.clamp(min=-dmax)
            if both_bounds and not (rmax > 1 and dmax > 0):  # round 19's false ok
                r, d = torch.ones_like(r), torch.zeros_like(d)
            if not (self.training and apply_rd):  # plain batch norm
                r, d = torch.ones_like(r), torch.zeros_like(d)
            d = d_sign * d
            self._rd = (r.detach(), d.detach())
            x_hat = (x - mean.view(view)) / std.view(view) * r.view(view) + d.view(view)
            running = [
                t.clone().view(view) for t in (self.running_mean, self.running_std)
            ]
            if running_if_unclipped and self.training and inside:
                x_hat = (x - running[0]) / running[1]
            if by_running_std and self.training:
                x_hat = (x - mean.view(view)) / running[1] + d.view(view)
            if self.training and graph_buffers:
                a = self.momentum
                self.running_mean = self.running_mean + a * (mean - self.running_mean)
                self.running_std = self.running_std + a * (std - self.running_std)
            elif (
                self.training
                and not update_first
                and not (plain_no_update and rmax == 1 and dmax == 0)
                and (torch.is_grad_enabled() or not grad_only)
            ):
                with torch.no_grad():
                    a = 0.01 if fixed_momentum else self.momentum  # the default, always
                    new_std = {
                        "std": std,
                        "var": var + self.eps,
                        "no eps": torch.sqrt(var),
                    }[std_update]
                    if rebind_buffers:  # new tensors: the graph's old ones stay intact
                        self.running_mean = self.running_mean + a * (
                            mean - self.running_mean
                        )
                        self.running_std = self.running_std + a * (
                            new_std - self.running_std
                        )
                    elif momentum_on == "typo":  # round 17's observed
                        self.running_mean += a * (mean - self.running_std)
                        self.running_std += a * (new_std - self.running_std)
                    elif momentum_on == "new":
                        self.running_mean += a * (mean - self.running_mean)
                        self.running_std += a * (new_std - self.running_std)
                    else:
                        self.running_mean.copy_(mean + a * (self.running_mean - mean))
                        self.running_std.copy_(
                            new_std + a * (self.running_std - new_std)
                        )
            if rd_after_affine and self.training:
                y = (x - mean.view(view)) / std.view(view)
                y = y * self.weight.view(view) + self.bias.view(view)
                return y * r.view(view) + d.view(view)
            if no_bias and self.training:
                return x_hat * self.weight.view(view)
            return x_hat * self.weight.view(view) + self.bias.view(view)

    return Renorm


# fmt: off
RENORM = {
    "weight starting at zeros (round 25)": (renorm_class(zero_weight=True), "weight should start as [1.0, 1.0"),
    "one value refused in eval mode": (renorm_class(eval_guard=True), "eval, one example"),
    "no running update under no_grad": (renorm_class(grad_only=True), "under torch.no_grad() left running_mean unchanged"),
    "gradient through r and d": (renorm_class(detach=False, rebind_buffers=True), "flows through r and d"),
    "gradient through r and d, buffers in place": (renorm_class(detach=False), "detached statistics"),
    "no clipping": (renorm_class(clip_r=False, clip_d=False), "not clipped"),
    "r not clipped": (renorm_class(clip_r=False), "r not clipped to"),
    "d not clipped": (renorm_class(clip_d=False), "d not clipped to"),
    "d clipped from below only": (renorm_class(clip_d="below"), "d is off in feature 1: yours 1.437, expected 0.5: there d is not clipped to [-0.5, 0.5]"),
    "running std updated with the variance": (renorm_class(std_update="var"), "averages in var_B + eps, the variance"),
    "running std without eps": (renorm_class(std_update="no eps"), "without eps"),
    "plain batch norm unless both bounds are relaxed": (renorm_class(both_bounds=True), "BatchRenorm NC rmax=1.5 dmax=0"),
    "running_mean moved towards mean - running_std": (renorm_class(momentum_on="typo"), "in running_mean: `old_std` where `old_mean` belongs"),
    "eval uses batch statistics": (renorm_class(eval_uses_batch=True), "the batch mean (eval mode uses the running statistics)"),
    "rmax and dmax fixed at construction": (renorm_class(attributes=False), "changed nothing"),
    "momentum on the old value": (renorm_class(momentum_on="old"), "moved by the fraction 0.8 = 1 - momentum of the way to the batch's value; PyTorch moves it by 0.2"),
    "no input validation": (renorm_class(validate=False), "ValueError"),
    "3-D input accepted": (renorm_class(validate="channels"), "(N, C, L)"),
    "unbiased batch variance": (renorm_class(correction=1), "correction=0"),
    "buffers left in the autograd graph": (renorm_class(graph_buffers=True), "in the autograd graph"),
    "constructor arguments ignored": (renorm_class(keep_arguments=False), "store the value passed in"),
    "d divided by the batch std": (renorm_class(d_by_batch_std=True), "d is divided by sigma_B"),
    "buffers updated before r and d": (renorm_class(update_first=True), "after this step's update"),
    "r and d never applied": (renorm_class(apply_rd=False), "r = 1 and d = 0 in every feature, plain batch norm's"),
    "d with the wrong sign": (renorm_class(d_sign=-1.0), "-0.5, -0.01194, by the same factor -1 = -1 (d before clipping"),
    "rmax and dmax as buffers": (renorm_class(bounds_as_buffers=True), "setting module.rmax and module.dmax failed (TypeError"),
    "momentum fixed at the default in the update": (renorm_class(fixed_momentum=True), "moved by the fraction 0.01"),
    "the last r and d applied in eval mode": (renorm_class(eval_keeps_rd=True), "BatchRenorm eval                   | WRONG"),
    "an image batch of one refused": (renorm_class(batch_guard=True), "your own test refused an input the exercise accepts"),
    "plain batch norm without the running update": (renorm_class(plain_no_update=True), "rmax=1 dmax=0 running_mean"),
    "channels checked for 2-D input only": (renorm_class(validate="2-D"), "wrong channels, 4-D"),
    "eval mode not reshaped for 4-D input": (renorm_class(eval_flat=True), "eval NCHW"),
    "r and d applied after gamma and beta": (renorm_class(rd_after_affine=True), "r and d are applied to gamma * x_hat + beta"),
    "no bias in training mode": (renorm_class(no_bias=True), "beta is not added: out = gamma * (x_hat * r + d) + beta"),
    "running statistics when nothing is clipped": (renorm_class(running_if_unclipped=True), "BatchRenorm NC nothing clipped gradient"),
    "deviations divided by running_std": (renorm_class(by_running_std=True), "or x - mu_B divided by running_std"),
    "the eps passed in not kept": (renorm_class(fixed_eps=True), "module.eps is 1e-05, expected 0.5"),
    "the modes swapped": (renorm_class(swap_modes=True), "the test of self.training is the wrong way round"),
}
# fmt: on


def schedule_variant(kind):
    def schedule(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
        def ramp(t, length, final, start=0.0):
            return start + (final - start) * min(1.0, max(0.0, t) / length)

        t = step - warmup
        if kind == "no warm-up delay":
            return ramp(step, r_steps, rmax_final, 1.0), ramp(step, d_steps, dmax_final)
        if kind == "swapped":
            return ramp(t, d_steps, rmax_final, 1.0), ramp(t, r_steps, dmax_final)
        if kind == "uncapped":
            return (
                1.0 + (rmax_final - 1.0) * max(0.0, t) / r_steps,
                dmax_final * max(0.0, t) / d_steps,
            )
        if kind == "constant finals":
            return ramp(t, r_steps, 3.0, 1.0), ramp(t, d_steps, 5.0)
        if kind == "paper":
            return ramp(t, r_steps, rmax_final, 1.0), ramp(t, d_steps, dmax_final)
        if kind == "jumps at the warm-up's end":  # a quarter of the way at once
            return (
                ramp(t + r_steps / 4 * (t > 0), r_steps, rmax_final, 1.0),
                ramp(t + d_steps / 4 * (t > 0), d_steps, dmax_final),
            )
        if kind == "slow":  # round 22's wrong cause: capped, but 5 times too slow
            return ramp(t, 5 * r_steps, rmax_final, 1.0), ramp(
                t, 5 * d_steps, dmax_final
            )
        if kind == "returns one value":
            return ramp(t, r_steps, rmax_final, 1.0)
        if kind == "no ramp at the warm-up step":  # 0 steps: final already at warmup
            done = lambda n: float(t >= 0) if n == 0 else min(1.0, max(0.0, t) / n)  # noqa: E731
            return 1.0 + (rmax_final - 1.0) * done(r_steps), dmax_final * done(d_steps)
        if kind == "one 0-step ramp finishes both":  # round 12's false ok
            if 0 in (r_steps, d_steps):
                return (rmax_final, dmax_final) if t > 0 else (1.0, 0.0)
            return ramp(t, r_steps, rmax_final, 1.0), ramp(t, d_steps, dmax_final)
        raise AssertionError(kind)

    return schedule


# fmt: off
def _keyword_only(step, warmup, r_steps, d_steps, *, rmax_final=3.0, dmax_final=5.0):
    """Round 10's false ok: the final bounds only as keywords."""
    return schedule_variant("paper")(step, warmup, r_steps, d_steps, rmax_final, dmax_final)


def _warmup_range(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Round 22's false ok: `step in range(warmup + 1)` refuses set_bounds' 12.5."""
    if step in range(warmup + 1):
        return 1.0, 0.0
    done = lambda n: 1.0 if n <= 0 else min(1.0, (step - warmup) / n)  # noqa: E731
    return 1.0 + (rmax_final - 1.0) * done(r_steps), dmax_final * done(d_steps)


def _whole_lengths(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Round 21's false ok: the lengths cut to whole steps (set_bounds' are not)."""
    warmup, r_steps, d_steps = int(warmup), int(r_steps), int(d_steps)

    def done(n):  # a 0-step ramp jumps after the warm-up
        return float(step > warmup) if n <= 0 else min(1.0, max(0.0, (step - warmup) / n))

    return 1.0 + (rmax_final - 1.0) * done(r_steps), dmax_final * done(d_steps)


def _ceil_warmup(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Round 23's false ok's class: a 0-step ramp jumps after the warm-up rounded up."""
    up = float(step > -(-warmup // 1))  # math.ceil(warmup)

    def done(n):
        return up if n <= 0 else min(1.0, max(0.0, (step - warmup) / n))

    return 1.0 + (rmax_final - 1.0) * done(r_steps), dmax_final * done(d_steps)


SCHEDULE = {
    "0-step ramp after the warm-up rounded up": (_ceil_warmup, "warmup=12.5, r_steps=0, d_steps=87.5, rmax_final=3, dmax_final=5: step 13: (1.0,"),
    "lengths cut to whole steps": (_whole_lengths, "the lengths were cut to whole steps"),
    "warm-up as a range (round 22)": (_warmup_range, "raised TypeError: 'float' object cannot be interpreted as an integer, in your line `if step in range(warmup + 1):`"),
    "final bounds keyword-only": (_keyword_only, "rmax_final is elsewhere: a call by position fails"),
    "ramps from step 0": (schedule_variant("no warm-up delay"), "after the warm-up, at step 5001"),
    "jumps at the warm-up's end": (schedule_variant("jumps at the warm-up's end"), "rmax jumps from 1 to 1.5 at step 5001"),
    "ramps swapped": (schedule_variant("swapped"), "ramps over 20000 steps (d_steps = 20000)"),
    "not capped": (schedule_variant("uncapped"), "cap it at the final value"),
    "ramps five times too slow": (schedule_variant("slow"), "dmax is still moving at step 100000, at 4.75; the paper's reaches 5 at step 25000"),
    "ignores the final values": (schedule_variant("constant finals"), "ignored"),
    "returns one value": (schedule_variant("returns one value"), "tuple of 2"),
    "returns a list": (lambda *a, **k: list(schedule_variant("paper")(*a, **k)), "return a tuple"),
    "a ramp of 0 steps divides by 0": (schedule_variant("paper"), "a division by a count or length that is 0"),
    "a ramp of 0 steps ends at the warm-up step": (schedule_variant("no ramp at the warm-up step"), "step 10: (3.0, 5.0), not (1.0, 0.0): (1, 0) up to warmup"),
    "one 0-step ramp finishes both": (schedule_variant("one 0-step ramp finishes both"), "dmax is right when both ramps have steps, wrong when r_steps=0"),
}
# fmt: on


def _renorm_mutates(dout, cache):
    dout -= dout.mean(0)  # changes the caller's array
    return renorm_backward(dout, cache)


RENORM_BACKWARD.update(
    {
        "NaN dx": (
            lambda d, c: (
                renorm_backward(d, c)[0] * np.nan,
                *renorm_backward(d, c)[1:],
            ),
            "NaN",
        ),
        "raises TypeError": (lambda d, c: d.sum(foo=1), "raised TypeError"),
        "transposed dx": (
            lambda d, c: (renorm_backward(d, c)[0].T, *renorm_backward(d, c)[1:]),
            "axes are swapped",
        ),
        "mutates dout": (_renorm_mutates, "in place"),
        # round 14's false ok: np.squeeze(dx), which drops the axis of one feature
        "dx squeezed": (
            lambda d, c: (
                np.squeeze(renorm_backward(d, c)[0]),
                *renorm_backward(d, c)[1:],
            ),
            "D=1          | WRONG   | dx has shape (12,), expected (12, 1): an axis of size 1 dropped",
        ),
    }
)


def _schedule_raises(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    return step + "steps"


def _int_steps(step, warmup, r_steps, d_steps, rmax_final=3.0, dmax_final=5.0):
    """Round 20's false ok: only Python ints taken as steps."""
    if not all(isinstance(a, int) for a in (step, warmup, r_steps, d_steps)):
        raise TypeError("steps must be int")
    return schedule_variant("paper")(
        step, warmup, r_steps, d_steps, rmax_final, dmax_final
    )


SCHEDULE.update(
    {
        "NumPy integer steps refused (round 20)": (
            _int_steps,
            "with NumPy integer steps",
        ),
        "returns None": (lambda *a, **k: None, "returned None"),
        "raises TypeError": (_schedule_raises, "raised TypeError"),
        "returns three values": (lambda *a, **k: (1.0, 0.0, 0.0), "tuple of 2"),
    }
)


# The notebook's NumPy forward pass is given, not an exercise; the mutants
# bring this copy of it, whose cache their backward passes read.
MUTANTS = [
    *family(
        "batch_renorm_backward",
        RENORM_BACKWARD,
        "batch_renorm_backward",
        given={"batch_renorm_forward": renorm_forward},
    ),
    *family(
        "batch_renorm",
        RENORM,
        "batch_renorm",
        "BatchRenorm",
        given={"batch_renorm_forward": renorm_forward},
    ),
    *family("renorm_schedule", SCHEDULE, "renorm_schedule"),
]
