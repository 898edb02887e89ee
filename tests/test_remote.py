"""The grader's channel to the learner's kernel (tools/grading/remote.py).

A stand-in kernel runs the channel's code in a namespace of its own, as
IPython would, so the encoding both ways is tested without starting one;
the real kernel path is tested by the grader's tests.
"""

from __future__ import annotations

import io
import json
import types

import numpy as np
import pytest
import torch
from torch import nn

from tools.grading import remote


class FakeKernel:
    """Executes code like a kernel: a user namespace, display() as an output."""

    def __init__(self, **user):
        self.user = dict(user)
        self.space: dict = {}

    def __call__(self, code: str) -> list:
        outputs = []
        import IPython.display

        saved = IPython.display.display

        def display(obj, raw=False):
            outputs.append({"output_type": "display_data", "data": dict(obj)})

        import builtins

        IPython.display.display = display
        builtins.get_ipython = lambda: types.SimpleNamespace(user_ns=self.user)
        try:
            exec(code, self.space)
        finally:
            IPython.display.display = saved
            del builtins.get_ipython
        return outputs


def session_with(**user):
    kernel = FakeKernel(**user)
    return remote.Session(kernel), kernel


def test_arrays_tuples_dicts_and_numbers_come_back_by_value():
    def fn(x, d):
        return x * 2, {"n": d["n"] + 1, "f": np.float32(0.5)}, None, float("nan")

    session, _ = session_with(fn=fn)
    f = remote.RemoteFunction(session, "fn")
    out, d, none, nan = f(np.arange(3.0), {"n": 1})
    assert np.array_equal(out, [0.0, 2.0, 4.0]) and out.dtype == np.float64
    assert d["n"] == 2 and d["f"] == np.float32(0.5) and none is None
    assert np.isnan(nan)


def test_learner_exceptions_are_raised_here_with_their_type():
    def fails(x):
        raise ValueError("N < 2")

    def todo(x):
        raise NotImplementedError("hint")

    class Odd(Exception):
        pass

    def odd(x):
        raise Odd("mine")

    session, _ = session_with(fails=fails, todo=todo, odd=odd)
    with pytest.raises(ValueError, match="N < 2"):
        remote.RemoteFunction(session, "fails")(1)
    with pytest.raises(NotImplementedError):
        remote.RemoteFunction(session, "todo")(1)
    with pytest.raises(Exception) as info:
        remote.RemoteFunction(session, "odd")(1)
    assert type(info.value).__name__ == "Odd"
    with pytest.raises(NameError):
        remote.RemoteFunction(session, "missing")(1)


def test_opaque_objects_stay_in_the_kernel_and_go_back_by_handle():
    class Cache:
        def __init__(self, x):
            self.x = x

    def forward(x):
        return x + 1, Cache(x)

    def backward(cache):
        return cache.x * 3

    session, _ = session_with(forward=forward, backward=backward)
    out, cache = remote.RemoteFunction(session, "forward")(np.ones(2))
    assert isinstance(cache, remote.Opaque) and cache.type_name == "Cache"
    back = remote.RemoteFunction(session, "backward")(cache)
    assert np.array_equal(back, [3.0, 3.0])


def test_in_place_changes_and_module_state_are_copied_back():
    def mutate(x):
        x -= 1

    def train_step(model):
        model.zero_grad()
        model(torch.ones(1, 2)).sum().backward()
        with torch.no_grad():
            model.weight.add_(1.0)

    session, _ = session_with(mutate=mutate, train_step=train_step)
    x = np.ones(3)
    remote.RemoteFunction(session, "mutate")(x)
    assert np.array_equal(x, [0.0, 0.0, 0.0])
    model = nn.Linear(2, 1)
    before = model.weight.detach().clone()
    remote.RemoteFunction(session, "train_step")(model)
    assert torch.allclose(model.weight, before + 1) and model.weight.grad is not None
    remote.RemoteFunction(session, "train_step")(model)  # the same object there
    assert torch.allclose(model.weight, before + 2)


def test_the_gradients_a_module_holds_reach_the_kernel():
    # a pickle drops .grad: the caller's gradients (lesson 01's, held before the call;
    # lesson 07's, which the function must leave alone) go with the module's state
    def grads(model):
        return None if model.weight.grad is None else model.weight.grad.sum().item()

    session, _ = session_with(grads=grads)
    model = nn.Linear(2, 3)
    model.weight.grad = torch.ones_like(model.weight)
    assert remote.RemoteFunction(session, "grads")(model) == 6.0
    assert model.weight.grad is not None and float(model.weight.grad.sum()) == 6.0


def test_torch_layers_come_back_rebuilt_and_identity_is_kept():
    def fold(layer, bn):
        new = nn.Conv2d(2, 3, 3, padding=1, bias=True).double()
        return new

    def same(layer):
        return layer

    session, _ = session_with(fold=fold, same=same)
    layer = nn.Conv2d(2, 3, 3, padding=1).double()
    got = remote.RemoteFunction(session, "fold")(layer, nn.BatchNorm2d(3).double())
    assert isinstance(got, nn.Conv2d) and got.padding == (1, 1)
    assert got(torch.ones(1, 2, 4, 4, dtype=torch.float64)).shape == (1, 3, 4, 4)
    assert remote.RemoteFunction(session, "same")(layer) is layer


def test_many_calls_make_one_round_trip():
    calls = []
    session, kernel = session_with(square=lambda v: v * v)
    execute = kernel.__call__

    def counting(code):
        calls.append(code)
        return execute(code)

    session.execute = counting
    f = remote.RemoteFunction(session, "square")
    results = f.many([((float(i),), {}) for i in range(50)])
    assert results == [float(i * i) for i in range(50)] and len(calls) == 1


def test_a_reply_without_the_nonce_or_too_big_is_refused():
    session, kernel = session_with(fn=lambda: 1)

    def forged(code):
        return [{"data": {remote.MIME: json.dumps({"nonce": "guess", "results": []})}}]

    session.execute = forged
    with pytest.raises(remote.RemoteError, match="did not answer"):
        remote.RemoteFunction(session, "fn")()
    decode = remote._Decoder(session, ())
    with pytest.raises(remote.RemoteError):
        decode({"__bnc__": "module", "module": "os", "class": "system"})
    with pytest.raises(remote.RemoteError):
        decode({"__bnc__": "nd", "dtype": "|O", "shape": [1], "b64": ""})
    with pytest.raises(remote.RemoteError, match="nested"):
        value = 1
        for _ in range(remote.MAX_DEPTH + 2):
            value = {"__bnc__": "list", "items": [value]}
        decode(value)
    assert isinstance(io.StringIO, type)


# --------------------------------------------------------------------------
# learner-defined modules: proxies here, objects in the (stand-in) kernel
# --------------------------------------------------------------------------


class Doubler(nn.Module):
    """A learner's module: a parameter, a buffer it updates, an attribute."""

    def __init__(self, n, momentum=0.5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.register_buffer("running", torch.zeros(n))
        self.momentum = momentum
        self.last = None

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running.mul_(1 - self.momentum).add_(self.momentum * x.mean(0))
        self.last = (x.mean(0).detach(), x.std(0).detach())
        return 2 * x * self.weight

    def reset(self):
        self.running.zero_()
        return "done"


def test_a_learner_module_is_a_proxy_that_behaves_like_the_module():
    session, kernel = session_with(Doubler=Doubler)
    made = remote.RemoteFunction(session, "Doubler")(3, momentum=0.25)
    assert isinstance(made, remote.RemoteModule) and isinstance(made, nn.Module)
    assert made.momentum == 0.25 and set(dict(made.named_parameters())) == {"weight"}
    assert set(made.state_dict()) == {"weight", "running"}
    made = made.double()
    assert made.weight.dtype == torch.float64
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    out = made(x)
    assert torch.allclose(out, 2 * x.detach())
    out.backward(torch.ones_like(out))
    # gradients computed by the kernel's autograd, delivered here
    assert torch.allclose(x.grad, torch.full_like(x, 2.0))
    assert torch.allclose(made.weight.grad, 2 * x.detach().sum(0))
    # buffers mirrored after the call; attributes and methods read remotely
    assert torch.allclose(made.running, 0.25 * x.detach().mean(0))
    mean, std = made.last
    assert torch.allclose(mean, x.detach().mean(0))
    assert made.reset() == "done" and torch.equal(made.running, torch.zeros(3).double())
    made.eval()
    assert not made.training


def test_changes_made_here_reach_the_kernel_before_its_next_call():
    session, kernel = session_with(Doubler=Doubler)
    made = remote.RemoteFunction(session, "Doubler")(2)
    with torch.no_grad():
        made.weight.fill_(3.0)
        made.running.fill_(7.0)
    made.momentum = 0.0  # an attribute: set in the kernel
    out = made(torch.ones(4, 2))
    assert torch.allclose(out, torch.full((4, 2), 6.0))
    assert torch.equal(made.running, torch.full((2,), 7.0))  # momentum 0: unchanged
    copy_ = __import__("copy").deepcopy(made)
    assert isinstance(copy_, remote.RemoteModule) and copy_ is not made
    with torch.no_grad():
        copy_.weight.fill_(1.0)
    assert torch.equal(made.weight.detach(), torch.full((2,), 3.0))


def test_learner_errors_in_a_module_come_back_with_their_type():
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("wrong channels")

    session, _ = session_with(Broken=Broken)
    made = remote.RemoteFunction(session, "Broken")()
    with pytest.raises(ValueError, match="wrong channels"):
        made(torch.ones(2))
    with pytest.raises(AttributeError):
        _ = made.no_such_attribute


def test_simulated_ranks_run_in_the_kernel_and_their_all_reduces_are_checked():
    from helpers import distributed

    def mean_of_all(x, all_reduce):
        total = all_reduce(x.sum(0))
        count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))
        return total / count

    session, _ = session_with(mean_of_all=mean_of_all)
    fn = remote.RemoteFunction(session, "mean_of_all")
    shards = [(torch.randn(n, 3, dtype=torch.float64),) for n in (2, 5, 1)]
    ranks = distributed.SimulatedRanks(3)
    results = ranks.run(fn, shards)
    want = torch.cat([s[0] for s in shards]).mean(0)
    assert all(torch.allclose(r, want) for r in results)
    assert (ranks.calls, ranks.elements) == (2, 4)
    with pytest.raises(remote.RemoteError, match="does not add up"):
        remote._check_log([[(torch.ones(1), torch.ones(1))]] * 2)


# --------------------------------------------------------------------------
# A hidden test's own objects: a learner's call cannot change them (A04)
# --------------------------------------------------------------------------


def _zeroing_fold(layer, bn):
    """Folds nothing: zeroes the caller's bn in place and returns a zero conv
    (attacks4 A04), so that a reference computed after the call from ``bn`` is 0."""
    with torch.no_grad():
        bn.weight.zero_()
        bn.bias.zero_()
        zero = nn.Conv2d(2, 3, 1).double()
        zero.weight.zero_()
        zero.bias.zero_()
    return zero


def test_a_hidden_call_cannot_change_the_graders_arguments():
    session, _ = session_with(fold=_zeroing_fold, mutate=lambda x: x.__imul__(0))
    session.hidden = True
    conv, bn = nn.Conv2d(2, 3, 1).double(), nn.BatchNorm2d(3).double().eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0), bn.bias.normal_()
    weight, bias = bn.weight.detach().clone(), bn.bias.detach().clone()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    folded = remote.RemoteFunction(session, "fold")(conv, bn)
    # the grader's bn is as it was: the hidden test's reference bn(conv(x)) is not 0
    assert torch.equal(bn.weight, weight) and torch.equal(bn.bias, bias)
    with torch.no_grad():
        assert not torch.allclose(folded(x), bn(conv(x)))
    array = np.ones(3)
    remote.RemoteFunction(session, "mutate")(array)
    assert np.array_equal(array, np.ones(3))
    # and each change is recorded, for the worker to fail the hidden test
    assert [c.split(":")[0] for c in session.changed] == [
        "fold changed its argument #2",
        "mutate changed its argument #1",
    ]


def test_a_hidden_module_call_cannot_change_the_graders_input():
    class Zeroes(nn.Module):
        def forward(self, x):
            with torch.no_grad():
                x.zero_()
            return x * 1

    session, _ = session_with(module=Zeroes())
    module = session.value("module")
    session.hidden = True
    x = torch.randn(3, 2, dtype=torch.float64)
    before = x.clone()
    module(x)
    assert torch.equal(x, before) and session.changed


def test_visible_calls_and_exercises_that_change_their_arguments_still_write_back():
    def merge_running_stats(model):
        with torch.no_grad():
            model.running_mean.add_(1.0)

    session, _ = session_with(
        fold=_zeroing_fold, merge_running_stats=merge_running_stats
    )
    bn = nn.BatchNorm2d(3).double().eval()
    remote.RemoteFunction(session, "fold")(nn.Conv2d(2, 3, 1).double(), bn)
    assert torch.equal(
        bn.weight, torch.zeros(3, dtype=torch.float64)
    )  # a check sees it
    assert session.changed == []  # visible: the check itself judges the change
    session.hidden = True
    bn = nn.BatchNorm2d(3).double()
    remote.RemoteFunction(session, "merge_running_stats")(bn)
    assert torch.equal(bn.running_mean, torch.ones(3, dtype=torch.float64))
    assert session.changed == []


def test_a_learner_signature_is_read_as_plain_data_and_a_forged_one_is_refused():
    import inspect

    from helpers.checks import _core

    class Swapped(nn.Module):  # round 12's false ok: the checks compare this order
        def __init__(self, num_features, momentum=0.1, eps=1e-5, **kwargs):
            super().__init__()

    session, kernel = session_with(Swapped=Swapped, fn=lambda x, *, eps=1e-3: x)
    cls = remote.RemoteFunction(session, "Swapped")
    assert str(inspect.signature(cls)) == str(inspect.signature(Swapped))
    assert (
        str(inspect.signature(remote.RemoteFunction(session, "fn")))
        == "(x, *, eps=0.001)"
    )
    order = "num_features, eps=1e-05, momentum=0.1"
    assert "eps is elsewhere" in _core.order_problem("x", cls, order).detail
    # a kernel that answers with a forged parameter list: no signature, no crash
    original = remote.Session.request
    forged = [[["not an identifier", 1, False, None]], [["x", 99, False, None]], None]
    for params in forged:
        session.request = lambda req, p=params: {"params": p}
        with pytest.raises(ValueError):
            inspect.signature(cls)
        assert _core.order_problem("x", cls, order) is None
    assert remote.Session.request is original
