"""Lesson 03: a from-scratch batch norm with switchable mistakes, and folding."""

from __future__ import annotations

from . import family, raise_


def scratch_class(
    *,
    running_var="unbiased",  # "biased"
    momentum_on="new",  # "old"
    buffers=True,
    update_in_eval=False,
    axes="right",  # "batch only": statistics over dim 0 alone
    eval_uses_batch=False,
    count_batches=True,
    handle_none=True,
    normalise_unbiased=False,
    count="values",  # "examples": n = N instead of N*L
    stats_without_grad=False,
    validate=True,
    untracked=True,  # False: track_running_stats=False keeps buffers anyway
    resets=True,
    buffers_in_graph=False,
    keep_dtype=True,
    train_on_running=False,  # the review's N1: running statistics in training
    none_offset=0,  # momentum=None as 1/(k + offset)
    eval_eps=True,
    affine_params=False,  # True: weight and bias even with affine=False; "absent"
    reset_all=True,  # False: reset_parameters() leaves the statistics; "affine": if weights
    one_pass=False,  # True: var = E[x^2] - mean^2, right but rounded otherwise
    fixed_eps=False,  # True: 1e-5 whatever eps is passed
    start_var=1.0,  # running_var's first value (0: zeroed at construction)
    compute_dtype=None,  # e.g. torch.float32: the normalisation computed in it
    normalise=True,  # False: out = gamma * x + beta, no statistics used
    decay_old=True,  # False: running += momentum * batch
    reset_in_place=True,  # False: reset_running_stats() binds new float32 tensors
    reset_guards=True,  # False: resets assume affine and tracked statistics
    zero_momentum=True,  # False: momentum=0 read as missing (the default 0.1)
    eval_guard=False,  # True: one value per channel refused in eval mode too
    guard_2d=False,  # True: one value per channel refused for (N, C) input only
    round_stats=False,  # True: batch statistics rounded to float32 before the update
    swapped=False,  # True: mean, var = torch.var_mean(x) (it returns var first)
    round_factor=False,  # True: n / (n - 1) from a float32 tensor n (round 17)
    int_count=False,  # True: momentum=None counts in a Python int reset leaves (18)
):
    import torch
    from torch import nn

    class Scratch(nn.Module):
        def __init__(
            self,
            num_features,
            eps=1e-5,
            momentum=0.1,
            affine=True,
            track_running_stats=True,
        ):
            super().__init__()
            self.num_features, self.eps = num_features, 1e-5 if fixed_eps else eps
            self.momentum, self.affine = momentum, affine
            self.track = track_running_stats or not untracked
            if affine or affine_params is True:
                self.weight = nn.Parameter(torch.ones(num_features))
                self.bias = nn.Parameter(torch.zeros(num_features))
            elif affine_params != "absent":  # "absent": no attribute at all
                self.register_parameter("weight", None)
                self.register_parameter("bias", None)
            if not self.track:
                for name in ("running_mean", "running_var", "num_batches_tracked"):
                    self.register_buffer(name, None)
            elif buffers:
                self.register_buffer("running_mean", torch.zeros(num_features))
                self.register_buffer(
                    "running_var", start_var + torch.zeros(num_features)
                )
                self.register_buffer("num_batches_tracked", torch.tensor(0))
            else:
                self.running_mean = torch.zeros(num_features)
                self.running_var = torch.ones(num_features)
                self.num_batches_tracked = torch.tensor(0)
            if resets:
                self.reset_running_stats = self._reset_stats
                self.reset_parameters = self._reset_parameters

        def _reset_stats(self):
            if reset_guards and not self.track:
                return
            if not reset_in_place:
                self.running_mean = torch.zeros(self.num_features)
                self.running_var = torch.ones(self.num_features)
                self.num_batches_tracked = torch.tensor(0)
                return
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

        def _reset_parameters(self):
            if reset_all is True or reset_all and self.weight is not None:
                self._reset_stats()
            if self.weight is not None or not reset_guards:
                nn.init.ones_(self.weight)
                nn.init.zeros_(self.bias)

        def forward(self, x):
            if validate and (
                x.dim() not in (2, 3, 4) or x.shape[1] != self.num_features
            ):
                raise ValueError("bad input")
            dims = [0] if axes == "batch only" else [0, *range(2, x.dim())]
            if eval_guard and x.numel() // x.shape[1] < 2:
                raise ValueError("one value per channel")
            view = [1, -1] + [1] * (x.dim() - 2)
            n = x.numel() // x.shape[1] if count == "values" else x.shape[0]
            n = x.shape[0] * x.shape[-1] ** (x.dim() - 2) if count == "square" else n
            use_batch = self.training or eval_uses_batch or not self.track
            use_batch = use_batch and not (train_on_running and self.track)
            if use_batch:
                one = x.numel() // x.shape[1] < 2 and not (guard_2d and x.dim() > 2)
                if validate and one:
                    raise ValueError("one value per channel")
                with torch.set_grad_enabled(
                    not stats_without_grad and torch.is_grad_enabled()
                ):
                    mean = x.mean(dims, keepdim=True)
                    var = x.var(
                        dims, correction=1 if normalise_unbiased else 0, keepdim=True
                    )
                    if one_pass:
                        var = (x * x).mean(dims, keepdim=True) - mean * mean
                    mean, var = (var, mean) if swapped else (mean, var)
            if self.track and buffers_in_graph and self.training:
                self.num_batches_tracked += 1
                m = self.momentum
                self.running_mean = (1 - m) * self.running_mean + m * mean.flatten()
                self.running_var = (
                    1 - m
                ) * self.running_var + m * var.flatten() * n / (n - 1)
            elif self.track and (self.training or update_in_eval):
                with torch.no_grad():
                    if count_batches:
                        self.num_batches_tracked += 1
                    self.steps = getattr(self, "steps", 0) + 1  # never reset
                    m = self.momentum if zero_momentum else (self.momentum or 0.1)
                    if m is None:
                        k = self.steps if int_count else int(self.num_batches_tracked)
                        k = k + none_offset
                        m = 1.0 / max(k, 1) if handle_none and not none_offset else None
                        m = 1.0 / k if none_offset else m
                    bm = x.mean([0, *range(2, x.dim())])
                    bv = x.var([0, *range(2, x.dim())], correction=0)
                    bm, bv = (bv, bm) if swapped else (bm, bv)
                    if round_stats:  # round 11's wrong cause: the figures were wrong
                        bm, bv = bm.float().to(bm.dtype), bv.float().to(bv.dtype)
                    if round_factor:  # read as "n counts every value" in round 17
                        bv = bv * (torch.tensor(n, dtype=torch.float32) / (n - 1))
                    elif running_var in ("unbiased", "twice", "eps"):
                        bv = bv * n / (n - 1)
                    bv = bv * n / (n - 1) if running_var == "twice" else bv
                    bv = bv * n / n - 1 if running_var == "no parentheses" else bv
                    bv = bv + self.eps if running_var == "eps" else bv
                    if running_var == "eps first":  # eps, then Bessel's factor
                        bv = (bv + self.eps) * n / (n - 1)
                    if not decay_old:
                        self.running_mean.add_(m * bm)
                        self.running_var.add_(m * bv)
                    elif momentum_on == "new":
                        self.running_mean.mul_(1 - m).add_(m * bm)
                        self.running_var.mul_(1 - m).add_(m * bv)
                    else:
                        self.running_mean.mul_(m).add_((1 - m) * bm)
                        self.running_var.mul_(m).add_((1 - m) * bv)
            if not use_batch:
                mean = self.running_mean.view(view)
                var = self.running_var.view(view)
            eps = self.eps if use_batch or eval_eps else 0.0
            xc = x
            if compute_dtype is not None:
                xc, mean, var = (t.to(compute_dtype) for t in (x, mean, var))
            out = (xc - mean) / torch.sqrt(var + eps) if normalise else xc
            if self.affine:
                out = out * self.weight.view(view) + self.bias.view(view)
            return out.to(x.dtype) if keep_dtype else out

    return Scratch


def scratch_protocol(kind):
    """Round 8's false oks (issue 28): what a module does across modes and calls."""
    import torch

    class Variant(scratch_class()):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.momentum_at_init = self.momentum

        def forward(self, x):
            stats = (self.running_mean, self.running_var)
            if kind == "momentum read at init":  # round 9's false ok
                self.momentum = self.momentum_at_init
            one_value = x.numel() // x.shape[1] < 2
            if kind == "guard after the update" and self.training and one_value:
                self.running_var.fill_(float("inf"))  # round 10's false ok
                raise ValueError("one value per channel")
            if kind == "batch statistics untrained" and not self.training:
                if int(self.num_batches_tracked) == 0:  # round 11's false ok
                    return torch.nn.functional.batch_norm(
                        x, None, None, self.weight, self.bias, True, 0.0, self.eps
                    )
            if kind == "channels checked in training only" and not self.training:
                if x.shape[1] != self.num_features:  # round 11's false ok
                    return x
            if kind == "new parameters" and not hasattr(self, "reset_parameters_"):
                self.reset_parameters_ = self.reset_parameters
                self.reset_parameters = self._new_parameters
            if kind == "eval under no_grad" and not self.training:
                with torch.no_grad():
                    return super().forward(x)
            if kind == "updates with grad only" and not torch.is_grad_enabled():
                kept = [t.clone() for t in (*stats, self.num_batches_tracked)]
                out = super().forward(x)
                for t, old in zip(
                    (*stats, self.num_batches_tracked), kept, strict=True
                ):
                    t.copy_(old)
                return out
            if kind == "eval statistics cached" and not self.training:
                first = self.__dict__.setdefault("first", [t.clone() for t in stats])
                now = [t.clone() for t in stats]
                for t, old in zip(stats, first, strict=True):
                    t.copy_(old)
                out = super().forward(x)
                for t, old in zip(stats, now, strict=True):
                    t.copy_(old)
                return out
            return super().forward(x)

        def train(self, mode=True):  # an override that forgets `return self`
            out = super().train(mode)
            return None if kind == "train returns None" else out

        def _new_parameters(self):
            self.reset_parameters_()
            self.weight = torch.nn.Parameter(torch.ones_like(self.weight))
            self.bias = torch.nn.Parameter(torch.zeros_like(self.bias))

    return Variant


def _guard_when_tracked():
    """Round 20's false ok: one value per channel refused only with running statistics."""
    import torch

    class Guard(scratch_class()):
        def forward(self, x):
            if not self.track and x.dim() > 1 and x.numel() // x.shape[1] < 2:
                return torch.zeros_like(x)  # normalised to zeros, not refused
            return super().forward(x)

    return Guard


def _reset_float32():
    """Round 20's false ok: reset_parameters() puts float32 tensors into .data."""
    import torch

    class Reset(scratch_class()):
        def _reset_parameters(self):
            super()._reset_parameters()
            self.weight.data = torch.ones(self.num_features)
            self.bias.data = torch.zeros(self.num_features)

    return Reset


def _mean_scaled_in_place():
    """Round 13's wrong cause: mean.mul_(momentum) in the update, then normalised with."""
    import torch

    class Scaled(scratch_class()):
        def forward(self, x):
            out = super().forward(x)  # the buffers as torch's
            if not self.training or self.momentum is None:
                return out
            dims, view = [0, *range(2, x.dim())], [1, -1] + [1] * (x.dim() - 2)
            mean, var = x.mean(dims) * self.momentum, x.var(dims, correction=0)
            y = (x - mean.view(view)) / torch.sqrt(var.view(view) + self.eps)
            return (
                y * self.weight.view(view) + self.bias.view(view) if self.affine else y
            )

    return Scaled


def _momentum_before_eps():
    """Round 12's false ok: the constructor's parameters in another order."""

    class Swapped(scratch_class()):
        def __init__(self, num_features, momentum=0.1, eps=1e-5, **kwargs):
            super().__init__(num_features, eps, momentum, **kwargs)

    return Swapped


def _squeezed():
    """Round 14's false ok: out.squeeze(), which drops a channel axis of size 1."""

    class Squeezed(scratch_class()):
        def forward(self, x):
            return super().forward(x).squeeze()

    return Squeezed


# fmt: off
SCRATCH = {
    "one value refused only when tracked (round 20)": (_guard_when_tracked(), "one value/channel (eval, track_running_stats=False)"),
    "reset_parameters in float32 (round 20)": (_reset_float32(), "weight is 1, 1, 1, 1 (torch.float32) after it"),
    "output squeezed": (_squeezed(), "torch.float64 (8, 1, 3) input gave torch.float64 (8, 3): a normalisation layer returns a tensor of x's shape: every axis of size 1 is dropped"),
    "batch mean scaled in place": (_mean_scaled_in_place(), "momentum times the batch mean (a mul_ on it?) or"),
    "momentum before eps": (_momentum_before_eps(), "eps is elsewhere: a call by position fails or goes astray"),
    "biased running_var": (scratch_class(running_var="biased"), "the biased batch variance"),
    "momentum on the old value": (scratch_class(momentum_on="old"), "momentum is applied to the old value"),
    # the outside review's (2026-12-06, C7 and A 3.16)
    "momentum=None as 1/(k+1)": (scratch_class(none_offset=1), "1/k at the k-th batch"),
    "momentum=None from a zero count": (scratch_class(none_offset=-1), "a division by a count or length that is 0 here"),
    "Bessel twice": (scratch_class(running_var="twice"), "`x.var(axis=0, ddof=1)` where `x.var(axis=0, ddof=0)` belongs"),
    "n = N * W * W (round 19's false ok: square images)": (scratch_class(count="square"), "uses n = 54, but n counts N·H·W = 36 values per channel"),
    "Bessel without parentheses (round 17's observed)": (scratch_class(running_var="no parentheses"), "`var * len(x) / len(x) - 1` where `var * len(x) / (len(x) - 1)` belongs"),
    "eps stored in running_var": (scratch_class(running_var="eps"), "eps is stored in running_var"),
    "no eps in eval mode": (scratch_class(eval_eps=False), "sqrt(v) without eps, v = running_var"),
    "buffers as plain tensors": (scratch_class(buffers=False), "register_buffer"),
    "updates in eval mode": (scratch_class(update_in_eval=True), "eval mode changed"),
    "statistics over N only for 3-D/4-D": (scratch_class(axes="batch only"), "taken over axes (0,)"),
    "running statistics in training mode": (scratch_class(train_on_running=True), "the running mean after the step (training mode"),
    "eval uses batch statistics": (scratch_class(eval_uses_batch=True), "eval mode uses the running statistics"),
    "num_batches_tracked not counted": (scratch_class(count_batches=False), "num_batches_tracked"),
    "momentum=None not handled": (scratch_class(handle_none=False), "momentum=None"),
    "normalises with the unbiased variance": (scratch_class(normalise_unbiased=True), "v = the unbiased variance (n - 1)"),
    "unbiased factor counts examples only": (scratch_class(count="examples"), "uses n = 6, but n counts N·L = 30 values per channel"),
    "statistics outside the graph": (scratch_class(stats_without_grad=True), "gradient differs"),
    "no input validation": (scratch_class(validate=False), "did not raise ValueError"),
    "track_running_stats ignored": (scratch_class(untracked=False), "None without tracking"),
    "no reset methods": (scratch_class(resets=False), "no reset_running_stats()"),
    "bfloat16 input gives float32 output": (scratch_class(keep_dtype=False), "returns the input's dtype"),
    "buffers updated in the graph": (scratch_class(buffers_in_graph=True), "in the autograd graph"),
    "parameters with affine=False": (scratch_class(affine_params=True), "with affine=False torch's has no parameters"),
    "no weight or bias attribute with affine=False (round 24)": (scratch_class(affine_params="absent"), "weight and bias are None (register_parameter"),
    "reset_parameters keeps statistics": (scratch_class(reset_all=False), "reset_parameters() must set running_mean to 0"),
    "eps argument ignored": (scratch_class(fixed_eps=True), "with e = 1e-05, not eps = 0.001"),
    "statistics reset only with weights (round 23)": (scratch_class(reset_all="affine"), "reset_parameters() left the running statistics as they were with affine=False"),
    "resets without guards": (scratch_class(reset_guards=False), "with affine=False: nothing to reset"),
    "momentum=0 read as missing": (scratch_class(zero_momentum=False), "momentum=0.0"),
    "one value refused in eval mode": (scratch_class(eval_guard=True), "eval, one example"),
    "one value refused for 2-D input only": (scratch_class(guard_2d=True), "did not raise ValueError: one value per channel, whatever"),
    "train() without return": (scratch_protocol("train returns None"), "train() did not return the module"),
    "reset_parameters makes new parameters": (scratch_protocol("new parameters"), "reset_parameters() replaced weight by a new tensor"),
    "eval under no_grad": (scratch_protocol("eval under no_grad"), "has no autograd graph (computed under torch.no_grad()"),
    "running statistics updated with grad only": (scratch_protocol("updates with grad only"), "under torch.no_grad()): num_batches_tracked is tensor(3)"),
    "eval statistics cached at the first eval": (scratch_protocol("eval statistics cached"), "eval mode: "),
    "statistics rounded to float32": (scratch_class(round_stats=True), ": float32 rounding, or a term as small"),
    "momentum=None counted in a Python int": (scratch_class(int_count=True), "ScratchBatchNorm reset_at=3        | WRONG"),
    "unbiased factor in float32": (scratch_class(round_factor=True), "PyTorch's to 5 digits: a rounding difference"),
    "momentum read at init": (scratch_protocol("momentum read at init"), "ScratchBatchNorm momentum_later=0.5 | WRONG"),
    "guard after the update": (scratch_protocol("guard after the update"), "running_var changed by refused inputs"),
    "batch statistics in eval before training": (scratch_protocol("batch statistics untrained"), "ScratchBatchNorm eval, untrained   | WRONG"),
    "channels checked in training only": (scratch_protocol("channels checked in training only"), "ScratchBatchNorm wrong channels (eval) | WRONG"),
}
# fmt: on


def fold_variant(
    *,
    eps=True,
    subtract_mean=True,
    add_beta=True,
    scale_bias=True,
    sequential=False,
    in_place=False,
    copy_settings=True,
    make_bias=True,
    refuse=True,
    copy_all=True,  # False: stride and padding only (the review's D2)
    handle_affine=True,  # False: assumes bn.weight exists (D4)
    keep_dtype=True,  # False: a float32 layer whatever the input's dtype (D5)
    eps_out=False,  # the review's C7: sqrt(running_var) + eps
    bn_eps=True,  # False: a fixed 1e-5 instead of bn.eps
    own_bias=True,  # False: the layer's own bias left out of the new bias
    square=False,  # True: the kernel's first size only (round 7's false ok)
    others=False,  # True: any other layer folded as a Conv2d (round 12's false ok)
    stride0=False,  # True: stride=layer.stride[0] (round 18's false ok)
):
    import torch
    from torch import nn

    def fold(layer, bn):
        if refuse and (bn.training or bn.running_var is None):
            raise ValueError("fusion only for eval, with running statistics")
        if not (others or isinstance(layer, (nn.Linear, nn.Conv2d))):
            raise TypeError(f"cannot fold into a {type(layer).__name__}")
        if sequential:
            return nn.Sequential(layer, bn)
        e = bn.eps if bn_eps else 1e-5
        std = torch.sqrt(bn.running_var + (e if eps else 0.0))
        std = torch.sqrt(bn.running_var) + bn.eps if eps_out else std
        gamma = bn.weight
        if handle_affine and gamma is None:
            gamma, beta = torch.ones_like(std), torch.zeros_like(std)
        else:
            beta = bn.bias
        scale = gamma / std
        own = layer.bias if layer.bias is not None else torch.zeros_like(scale)
        own = own if own_bias else torch.zeros_like(scale)
        shift = -bn.running_mean * scale if subtract_mean else 0.0
        bias = (
            (own * scale if scale_bias else own) + shift + (beta if add_beta else 0.0)
        )
        if isinstance(layer, nn.Linear):
            new = (
                layer
                if in_place
                else nn.Linear(layer.in_features, layer.out_features, bias=make_bias)
            )
        else:
            kwargs = (
                dict(
                    stride=layer.stride[0] if stride0 else layer.stride,
                    padding=layer.padding,
                )
                if copy_settings
                else {}
            )
            if copy_settings and copy_all:
                kwargs.update(
                    dilation=layer.dilation,
                    groups=layer.groups,
                    padding_mode=layer.padding_mode,
                )
            new = (
                layer
                if in_place
                else nn.Conv2d(
                    layer.in_channels,
                    layer.out_channels,
                    layer.kernel_size[0] if square else layer.kernel_size,
                    bias=make_bias,
                    **kwargs,
                )
            )
        new = new.to(layer.weight) if keep_dtype else new.to(layer.weight.device)
        shape = [-1] + [1] * (layer.weight.dim() - 1)
        with torch.no_grad():
            weight = layer.weight * scale.view(shape)
            new.weight.copy_(weight)
            if new.bias is not None:
                new.bias.copy_(bias)
            elif in_place:
                new.bias = nn.Parameter(bias)
        return new

    return fold


# fmt: off
def _fold_adding_affine(layer, bn):
    """Round 18's false ok: gamma and beta added to an affine=False bn, then folded."""
    import torch

    if not bn.affine:
        ones = torch.ones_like(bn.running_mean)
        bn.weight, bn.bias = torch.nn.Parameter(ones), torch.nn.Parameter(0 * ones)
    return fold_variant()(layer, bn)


def _fold_in_inference_mode():
    """Round 15's false ok: the fold under torch.inference_mode(): it cannot train."""
    import torch

    right = fold_variant()

    def fold(layer, bn):
        with torch.inference_mode():
            return right(layer, bn)

    return fold


FOLD = {
    "folded in inference mode": (_fold_in_inference_mode(), "made under torch.inference_mode() take no part in training"),
    "no eps": (fold_variant(eps=False), "sqrt(v) without eps"),
    "eps outside the root": (fold_variant(eps_out=True), "eps outside the root"),
    "mean not subtracted": (fold_variant(subtract_mean=False), "running mean is not subtracted"),
    "beta forgotten": (fold_variant(add_beta=False), "beta is not applied"),
    "own bias not scaled": (fold_variant(scale_bias=False), "own bias is not scaled"),
    "returns a Sequential": (fold_variant(sequential=True), "returned a Sequential"),
    "changes the layer in place": (fold_variant(in_place=True), "in place"),
    "conv settings not copied": (fold_variant(copy_settings=False), "copy every setting"),
    "fixed eps": (fold_variant(bn_eps=False), "with e = 1e-05, not eps = 0.001"),
    "no bias created": (fold_variant(make_bias=False), "has no bias"),
    "folds a batch norm in training mode": (fold_variant(refuse=False), "Fusion only for eval"),
    # the outside review's (2026-12-06, W3 and B1)
    "dilation and groups not copied": (fold_variant(copy_all=False), "fails only where the conv has dilation=2, groups=2"),
    "assumes affine": (fold_variant(handle_affine=False), "gamma = 1 and beta = 0"),
    "float32 fold of a float64 layer": (fold_variant(keep_dtype=False), "the layer's dtype and device"),
    "the kernel's first size only": (fold_variant(square=True), "a 3x2 kernel"),
    "other layers folded as Conv2d": (fold_variant(others=True), "fold_batchnorm Conv1d              | WRONG   | returned a Conv2d: return one Conv1d (or raise TypeError"),
    "other layers refused with NotImplementedError": (lambda layer, bn: fold_variant()(layer, bn) if type(layer).__name__ in ("Linear", "Conv2d") else raise_(NotImplementedError("Linear, Conv2d only")), "raised NotImplementedError (a layer it does not fold: raise TypeError"),  # round 17's false ok
    "stride's first entry for both": (fold_variant(stride0=True), "the folded conv's stride is (2, 2), the original's (2, 1)"),
    "gamma and beta added to an affine=False bn": (_fold_adding_affine, "added or removed parameters or buffers of its input argument #2"),
    "refuses an untrained batch norm": (lambda layer, bn: raise_(ValueError("no batch seen")) if bn.num_batches_tracked is not None and not int(bn.num_batches_tracked) else fold_variant()(layer, bn), "fold_batchnorm linear untrained BN | ERROR"),
    "refuses momentum=None (round 22)": (lambda layer, bn: raise_(ValueError("cumulative")) if bn.momentum is None else fold_variant()(layer, bn), "fold_batchnorm conv momentum=None  | ERROR"),
    "refusals that say nothing (round 23)": (lambda layer, bn: raise_(ValueError()) if bn.training else fold_variant()(layer, bn), "raises ValueError with no message: say why"),
    "refuses a layer in training mode": (lambda layer, bn: fold_variant()(layer.eval(), bn) if not layer.training else raise_(ValueError("training mode")), "fold_batchnorm linear layer.train()"),
}
# fmt: on


MUTANTS = [
    *family("scratch_batchnorm", SCRATCH, "scratch_batchnorm", "ScratchBatchNorm"),
    *family("fold_batchnorm", FOLD, "fold_batchnorm"),
]
