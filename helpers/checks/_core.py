"""Machinery shared by every exercise check: call the learner's function on inputs the
check makes, compare with a reference (PyTorch or a numerical gradient, never a copy of
the solution), print one aligned line per output.  Never raises in a notebook; while
grading (``config.grading()``) a failure raises :class:`CheckFailed`.  A wrong answer
gets a cause only where one hypothesis (the reference with a single change) reproduces
it, no other does, the input tells it from the right answer and the answer is not
degenerate (zeros, a constant); else what was observed (which output or stage differs,
by what factor, offset, permutation, where, at what rounding).  Never a guess."""

import ast
import contextlib
import copy
import functools
import inspect
import itertools
import pickle
import re
import sys
import sysconfig
import textwrap
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import config, contract

OK, WRONG, ERROR, TODO = "ok", "WRONG", "ERROR", "not yet"
INFO = "note"  # informative, never a verdict on the learner: skipped, or for comparison
EPS = 1e-5  # PyTorch's default eps for every normalisation layer: the checks' too
_SIZES, _GRAD_OFF, _IDLE, _TRACE, _USED = [], [], [], [], []  # the last call's
NAME_WIDTH, VERDICT_WIDTH = 34, 7


class CheckFailed(AssertionError):
    """Raised by a failed check while grading (never in a learner's session)."""


@dataclass
class Result:
    """The outcome of one check: truthy when it passed."""

    name: str
    verdict: str
    detail: str
    error: float | None = None
    bound: float | None = None
    passed = property(lambda self: self.verdict in (OK, INFO))
    __bool__ = passed.fget

    line = lambda r: f"{r.name:{NAME_WIDTH}} | {r.verdict:{VERDICT_WIDTH}} | {r.detail}"
    __repr__ = line  # what a learner sees if they echo a result


ok = lambda name, detail, *measured: Result(name, OK, detail, *measured)
wrong = lambda name, detail, *measured: Result(name, WRONG, detail, *measured)
info = lambda name, detail: Result(name, INFO, detail)
torch = lambda: __import__("torch")  # when a check first needs it: helpers stay light
_TODO = "not implemented yet: replace the `raise NotImplementedError` line with your "
not_implemented = lambda n: Result(n, TODO, _TODO + "code, then run this cell again")


class Report(list):
    """A check's results (a list of Result), falsy if any failed."""

    passed = property(lambda self: bool(len(self)) and all(r.passed for r in self))
    __bool__ = passed.fget
    verdicts = property(lambda self: [r.verdict for r in self])

    def lines(self) -> str:
        """One line per result; a diagnosis already given says so, once per check."""
        dup = lambda i, r: not r.passed and r.detail in [s.detail for s in self[:i]]
        same = lambda r: Result(r.name, r.verdict, "the same as above").line()
        return "\n".join(same(r) if dup(i, r) else r.line() for i, r in enumerate(self))

    __repr__ = lines
    _ipython_display_ = lambda self: None  # already printed by the check


def report(results, quiet: bool = False, strict: bool | None = None) -> Report:
    """Print and return a Report; raise on a failure if ``strict`` (None: grading)."""
    result = Report([results] if isinstance(results, Result) else results)
    if not quiet:
        print(result.lines())
    if (config.grading() if strict is None else strict) and not result.passed:
        raise CheckFailed("\n".join(item.line() for item in result if not item.passed))
    return result


# --- calling the learner's code safely ---
def _changed(a, b) -> bool:  # a snapshot, b the object now
    if isinstance(a, np.ndarray):
        return not np.array_equal(a, b, equal_nan=True)
    same = torch().equal(a.nan_to_num(), b.detach().nan_to_num())  # NaN == NaN
    return not same or (a.dtype, a.requires_grad) != (b.dtype, b.requires_grad)


def _watch(value, where: str, depth=0) -> list:
    """(where, object, snapshot): arrays (nested too), a module's state and mode."""
    if isinstance(value, np.ndarray):
        return [(where, value, value.copy())]
    copied = lambda t: t.detach().clone().requires_grad_(t.requires_grad)
    if isinstance(value, torch().Tensor):
        return [(where, value, copied(value))]
    if isinstance(value, torch().nn.Module):
        state = {f"parameter {k}": p for k, p in value.named_parameters()}
        if where != "your module":  # a model passed in: its buffers are the caller's
            state |= {f"buffer {k}": b for k, b in value.named_buffers()}
        found = [(f"{where}'s {k}", t, copied(t)) for k, t in state.items()]
        keys = None if where == "your module" else list(value.state_dict())  # added?
        return found + [(f"{where} mode", value, (value.training, keys))]
    if depth >= 3 or not isinstance(value, (dict, tuple, list)):
        return []
    kv = value.items() if isinstance(value, dict) else enumerate(value)
    return [w for k, v in kv for w in _watch(v, f"{where} (item [{k!r}])", depth + 1)]


@contextlib.contextmanager
def quiet_numerics():
    """Silence NumPy's warnings in the learner's code: checks report NaNs."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def copied(value):
    """A deep copy, or ``value`` itself if it has none (a graph, a module): no crash"""
    with contextlib.suppress(Exception):  # any object's own __deepcopy__ may raise
        return copy.deepcopy(value)
    return value  # as a whole: a copy of some items would cut a graph's leaves


def _stepped(o, *_):  # an optimizer's step: its parameters all without .grad?
    _IDLE.extend([o] * all(p.grad is None for g in o.param_groups for p in g["params"]))


@functools.cache
def _tracer():  # a torch function mode noting graph cuts (.detach()...), in-place steps
    class Trace(__import__("torch.overrides").overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name, this, kw = getattr(func, "__name__", ""), [*args, 0][0], kwargs or {}
            off = name == "requires_grad_" and False in (*args[1:], *kw.values())
            if name in ("backward", "grad"):  # Tensor.backward, autograd.grad
                _GRAD_OFF.append(not torch().is_grad_enabled())  # no_grad is said
            if getattr(this, "grad_fn", None) and name in ("detach", "numpy") or off:
                _TRACE.append(f".{name}({'False' * off})")
            seen = self.__dict__.setdefault("params", set())  # their storage
            with contextlib.suppress(Exception):  # no storage (vmap, sparse): no note
                ptr = this.data_ptr() if isinstance(this, torch().Tensor) else None
                seen |= {ptr} if isinstance(this, torch().nn.Parameter) else set()
                new = name in ("__sub__", "__add__", "sub", "add")  # p = p - lr * g
                if ptr in seen and (new or name[-1:] == "_" != name[:1]):  # p -= lr * g
                    _TRACE.append("rebound" if new else "in place")  # p.data.copy_ too
            out = func(*args, **kw)
            with contextlib.suppress(Exception):  # F.*'s keywords; a cast (.float())
                if getattr(func, "__module__", "") == "torch.nn.functional":
                    _USED.append(f"F.{name}({_keywords(func, kw)})")
                if this.dtype.is_floating_point and out.is_floating_point():
                    cast = out.dtype != this.dtype  # .float(), .half(), autocast
                    _USED.extend([f"converts {this.dtype} to {out.dtype}"] * cast)
            return out

    return Trace


def _keywords(func, kw) -> str:  # a torch.nn.functional call's keywords but defaults
    with contextlib.suppress(TypeError, ValueError):  # a builtin's: all
        start = inspect.signature(func).parameters
        same = lambda k, v: k in start and repr(start[k].default) == repr(v)
        kw = {k: v for k, v in kw.items() if not same(k, v)}  # **kwargs' too
    said = {k: "a tensor" if hasattr(v, "dtype") else repr(v) for k, v in kw.items()}
    return ", ".join(f"{k}={v}" for k, v in said.items())


def calls_differ(reference: Callable, error: float) -> str | None:
    """How the last call()'s F.* calls and casts differ from reference()'s, or None"""
    saved, mine, _USED[:] = [[*t] for t in (_GRAD_OFF, _IDLE, _TRACE)], set(_USED), []
    with contextlib.suppress(Exception), _tracer()():
        reference()
    (_GRAD_OFF[:], _IDLE[:], _TRACE[:]), theirs = saved, set(_USED)
    called = lambda calls: {c[: c.find("(")] for c in calls if c[0] == "F"}  # F.f(..)
    if {"F.log_softmax", "F.nll_loss"} <= called(mine):  # cross-entropy in two steps
        mine.add("F.cross_entropy()")
    if (ran := called(theirs)) and not called(mine):
        why = "your code made none of the course's torch.nn.functional calls ("
        return why + ", ".join(sorted(ran)) + "): the model never ran"
    eps = lambda c: torch().finfo(getattr(torch(), c.split(".")[-1])).eps  # target's
    casts = sorted(c for c in mine - theirs if c[0] == "c" and error < 1e3 * eps(c))
    said = [f"your code {c}; the course's never does" for c in casts]
    for f in sorted(ran):
        m, t = ({c for c in calls if c.startswith(f + "(")} for calls in (mine, theirs))
        if m and not m & t:  # the same function, other keywords
            said.append(f"yours calls {', '.join(sorted(m))}, the course's ")
            said[-1] += ", ".join(sorted(t))
        elif not m:
            said.append(f"the course's calls {f}, which yours never does")
            others = called(mine) - called(theirs)
            said[-1] += f" (yours calls {', '.join(sorted(others))})" * bool(others)
    return "; ".join(said) or None


def _no_graph(message) -> str | None:
    """Why backward() found no graph, from what the last call's code was seen do."""
    cuts = " and ".join(sorted({t for t in _TRACE if t[0] == "."}))
    if "grad_fn" in message and _GRAD_OFF[-1:] == [True]:  # seen by call()
        why = "backward() ran with gradients off (in a torch.no_grad() or "
        return why + "set_grad_enabled(False) block or decorator): no graph is made"
    if "grad_fn" in message and cuts:
        why = f"your code called {cuts} on a tensor in the graph: what it "
        return why + "returns has no graph, nor what is computed from it"


def call(name, fn, *args, copy_inputs=True, returns=None, watch=True, **kwargs):
    """fn(*args) on copies: (value, None); (None, why) if it raised or changed an arg"""
    if not callable(fn):
        why = "pass the function itself, without calling it (no parentheses)"
        return None, wrong(name, f"expected a function, got {type(fn).__name__}: {why}")
    args, kwargs = (copied(args), copied(kwargs)) if copy_inputs else (args, kwargs)
    _SIZES[:] = [tuple(a.shape) for a in args if len(getattr(a, "shape", ())) > 1][:1]
    watched = [_watch(a, f"its input argument #{i + 1}") for i, a in enumerate(args)]
    watched.append(_watch(fn, "your module"))
    states = lambda: {k: v for f in (fn, *args) for k, v in _state(f).items()}
    state, _GRAD_OFF[:], _IDLE[:], _TRACE[:], _USED[:] = states(), [], [], [], []
    optim = __import__("torch.optim.optimizer", fromlist=["_"])  # not an attribute
    hook = optim.register_optimizer_step_pre_hook(_stepped)
    try:
        with hook, quiet_numerics(), _tracer()():
            value = fn(*args, **kwargs)
    except Exception as exc:  # the learner's bug, reported, never re-raised
        last = traceback.extract_tb(exc.__traceback__)[-1]  # a stub's own raise line?
        stub = not _whose(last.filename) and (last.line or "raise").startswith("raise")
        if isinstance(exc, NotImplementedError) and stub:  # not torch's on this device
            return None, not_implemented(name)
        return None, Result(name, ERROR, "raised " + raised(exc, args))
    for where, now, snap in itertools.chain(*watched):
        why = "leave the caller's model as it was: work on a copy (copy.deepcopy)"
        if where.endswith(" mode") and now.training != snap[0]:
            how = "eval" if snap[0] else "training"
            return None, wrong(name, f"switched {where[:-5]} to {how} mode: {why}")
        if where.endswith(" mode") and snap[1] not in (None, list(now.state_dict())):
            what = f"added or removed parameters or buffers of {where[:-5]}"
            return None, wrong(name, f"{what} (state_dict's keys changed): {why}")
        if not watch or where.endswith(" mode") or not _changed(snap, now):
            continue
        if getattr(snap, "requires_grad", False) != getattr(now, "requires_grad", 0):
            why = "detach_() or requires_grad_() changed it: use .detach(), a new one"
        elif where.startswith("your module"):  # its forward pass
            why = "a forward pass leaves parameters to the optimizer; what it updates "
            why += "(running statistics) are buffers (register_buffer)"
        elif "'s " in where and snap.dtype != now.dtype:
            why += f"; .float() or .to() converted it to {now.dtype} in place"
        elif "'s " not in where:
            why = "compute new arrays instead of writing into the caller's (e.g. "
            why += "x = x - mu, not x -= mu)"
        return None, wrong(name, f"changed {where} in place: {why}")
    for where in (k for k, v in states().items() if v != state.get(k)):
        why = f"changed {where} during the call: it keeps state between calls (a "
        why += "cache, a running total), so the next input's answer depends on this "
        return None, wrong(name, why + "one: compute from the arguments alone")
    outs = value if isinstance(value, tuple | list) else [value]
    kinds = lambda items: {type(a).__name__ for a in items if hasattr(a, "shape")}
    if kinds(args) == {"ndarray"} and "Tensor" in kinds(outs):
        why = "returned torch tensors for NumPy input: return NumPy arrays"
        return None, wrong(name, why)
    kind = lambda t: f"{t.dtype} {tuple(t.shape)}" if hasattr(t, "dtype") else type(t)
    layer = not type(fn).__module__.startswith("torch") and hasattr(fn, "training")
    if layer and hasattr(x := (args or [0])[0], "dtype") and kind(x) != kind(value):
        why = "torch returns the input's dtype, which mixed precision's next layer "
        why += "expects: compute as you like, then .to(x.dtype)"
        if getattr(value, "shape", None) != x.shape:  # a squeeze()? or no tensor
            cut = getattr(value, "shape", None) == tuple(k for k in x.shape if k != 1)
            why = "every axis of size 1 is dropped (a squeeze()?)" if cut else "keep it"
            why = f"a normalisation layer returns a tensor of x's shape: {why}"
        seen = kind(value) if hasattr(value, "dtype") else type(value).__name__
        return None, wrong(name, f"{kind(x)} input gave {seen}: {why}")
    return (value, None) if returns is None else unpack(name, value, *returns)


def cache_kept(name, forward, backward, again, dout, cache, grads) -> Result | None:
    """Wrong if ``backward(dout, cache)`` changes after ``forward(*again)``, or None"""
    kept = copied(cache)
    with quiet_numerics(), contextlib.suppress(Exception):
        forward(*copied(again))  # another batch of the same shape
    later, failed = call(name, backward, dout, cache, returns=(len(grads), "grads"))
    same = lambda a, b: np.array_equal(to_numpy(a), to_numpy(b), equal_nan=True)
    if failed is not None:  # a cache one call uses up (a graph freed by backward())
        why = "a second backward call on the same cache failed: leave the cache "
        return wrong(name, why + f"as you found it ({failed.detail})")
    if all(map(same, later, grads)):
        return None
    why = "a second forward call (another batch, same shape) "
    pairs = zip(_watch(kept, ""), _watch(cache, ""), strict=False)  # then and now
    if any(_changed(a[1], b[1]) for a, b in pairs):
        why += "changed the first call's cache: it holds an array the forward reuses "
        return wrong(name, why + "(a buffer kept between calls); give each its own")
    why += "changed what backward gives on the first call's cache: it reads more "
    return wrong(name, why + "than its cache (a global, an attribute): use the cache")


def _state(fn, depth=0) -> dict:
    """What a function keeps between calls (global data, defaults, closure), pickled"""
    if callable(getattr(fn, "cache_info", None)):  # functools.cache, lru_cache
        return {"a functools cache": pickle.dumps(fn.cache_info().currsize)}
    code = getattr(fn, "__code__", None)
    if code is None or depth > 2 or _whose(code.co_filename) == "library":
        return {}
    cells = zip(code.co_freevars, getattr(fn, "__closure__", None) or (), strict=False)
    found = {f"the global `{n}`": fn.__globals__.get(n) for n in code.co_names}
    found |= {f"the enclosing `{n}`": c for n, c in cells}
    found["a default argument"] = (fn.__defaults__ or ()) + (fn.__kwdefaults__,)
    found["an attribute of your function"] = getattr(fn, "__dict__", None)
    data, state = (np.ndarray, list, dict, set, tuple, int, float, torch().Tensor), {}
    for where, value in found.items():
        with contextlib.suppress(Exception):  # an empty cell, a thing not data
            value = value.cell_contents if type(value).__name__ == "cell" else value
            state |= _state(value, depth + 1) if callable(value) else {}
            small = getattr(value, "nbytes", 0) < 2**24  # not a data set
            if value is None or isinstance(value, data) and small:
                state[where] = pickle.dumps(value)
    return state


MEANINGS = {  # an error's signature (a regex) -> what it means in the learner's code
    r"does not have a grad_fn": "what backward() ran on has no autograd graph "
    "(computed under torch.no_grad(), or from detached tensors or NumPy values)",
    r"leaf Variable that requires grad": "a tensor that requires grad is changed in "
    "place: compute a new one, or update a parameter under torch.no_grad()",
    r"graph a second time": "backward() ran twice through one graph: run the "
    "forward pass again before each backward()",
    r"only for scalar": "backward() needs one number: reduce the loss (.mean())",
    r"from the 'CPU' backend": "torch has no CPU version of this operation (a CUDA "
    "kernel): write it from tensor operations",
    r"numpy\(\) on Tensor that requires grad": "call .detach() before .numpy()",
    r"Quantiles must be in": "np.quantile takes fractions, np.percentile percents",
    r"'numpy.ndarray' object has no": "a NumPy array used as a torch tensor",
    r"'Tensor' object has no attribute": "a torch tensor used as a NumPy array",
    r"target dtype to be Long": "cross_entropy's targets are class indices (int64)",
    r"same dtype|expected scalar type|dtype.* but got": "tensors of two dtypes meet "
    "(float32 and float64?): keep the input's",
    r"index out of range|index \d+ is out": "an index past the end (from 0; -1 last)",
    r"Dimension out of range|axis \d+ is out of bounds": "an axis past the array's "
    "last one: a dim= or axis= in that line, given or by default, is not an axis here",
    r"mat1 and mat2 shapes|not aligned": "a matrix product's inner sizes differ: "
    "nn.Linear(in_features, out_features) takes the input's size first",
    r"'NoneType'": "a value is None: a .grad before backward() or after zero_grad(), "
    "a function without `return`, or a layer without bias",
    r"values to unpack": "more or fewer names than values: what is unpacked there?",
    r"division by zero": "a division by a count or length that is 0 here",
    r"modified by an inplace": "a tensor this graph saved was changed in place "
    "after the forward pass that built the graph",
    r"argument 'dim'": "dim= is torch's keyword; NumPy's is axis=",
    r"argument 'keepdim'": "NumPy's keyword is keepdims= (torch's keepdim=)",
    r"before Module.__init__": "call super().__init__() first in __init__",
    r"could not infer output dtype": "convert an integer tensor first (.double())",
    r"invalid for input of size|cannot reshape": "the new shape holds another "
    "number of values than the array",
    r"view size is not compatible": "after a transpose, use .reshape(), not .view()",
    r"more than 1 value per channel": "batch norm needs more than one value per "
    "channel in training: here a batch of one",
    r"value of (a )?Tensor with more|truth value of an": "an array used as True or "
    "False (`if t:`): test an optional argument with `is not None`",
    r"only (0-dimensional|size-1|length-1) arrays": "math's functions take one "
    "number: use np.sqrt, np.exp... on arrays",
    r"running_mean must be defined": "F.batch_norm with training=False normalises "
    "with running statistics: training=True uses the batch's",
    r"same number of dimensions": "torch.cat joins tensors of one rank: flatten "
    "each (.reshape(-1)) first",
    r"object has no attribute '(weight|bias)'": "no weight or bias: torch's names for "
    "batch norm's gamma and beta (an activation has none: pick layers by isinstance)",
    r"einstein sum|subscripts": "an einsum needs one letter per axis of each array",
    r"to a Python scalar|converted to Scalar": ".item() takes one number, not several",
    r"bitwise_xor": "`^` is a bitwise XOR in Python: a power is `**`",
    r"0D or 1D target tensor expected": "cross_entropy takes class indices (N,) or "
    "probabilities of the logits' shape: one_hot(y) has y.max() + 1 columns unless "
    "num_classes= is given",
    r"Inference tensors cannot": "tensors made under torch.inference_mode() take "
    "no part in training: make them under torch.no_grad()",
    r"instances of 'tuple' and": "a tuple (a shape?) compared with a number: len(x)",
    r"Cannot cast ufunc .* dtype\('u?int": "-= or /= on integers: use x.astype(float)",
    r"output array is read-only": "np.broadcast_to's view is read-only: .copy() it",
    r"axes don't match array": "NumPy's transpose takes all axes; torch's swaps two",
    r"multiple values for (keyword )?argument": "an argument given twice (**kwargs?)",
    r"empty parameter list": "an optimizer over no parameters (model[:0]?)",
}


def raised(exc: BaseException, args=()) -> str:
    """``exc`` in words: its message, the learner's line, its meaning, input shapes."""
    message = (str(exc).strip().splitlines() or [""])[0]
    message = message[:117] + "..." if len(message) > 120 else message
    text = f"{type(exc).__name__}: {message}"
    mine = [f for f in traceback.extract_tb(exc.__traceback__) if not _whose(f[0])]
    if mine and mine[-1].line:
        line = mine[-1].line.strip()
        text += f", in your line `{line[:80]}` ({mine[-1].name})"
        if line.startswith("raise"):  # checks call with inputs the exercise accepts
            text += ": your own test refused an input the exercise accepts"
    shapes = s if (s := _read_frame(exc, message)) and s.startswith("(in that") else ""
    meaning = broadcast_hint(message, args) or (None if shapes else s)  # None named?
    if not mine and isinstance(exc, TypeError) and "argument" in str(exc):  # binding
        meaning = "(keep the exercise's parameters: their names and order) "
    found = next((m for k, m in MEANINGS.items() if re.search(k, message)), None)
    found = _no_graph(message) or found  # what call() saw: no_grad, .detach()
    text += (f" ({found}) " if found and not meaning else f" {meaning or ''}") + shapes
    arrays = [a for a in args if isinstance(a, (np.ndarray, torch().Tensor))]
    dtype = lambda a: str(a.dtype).replace("torch.", "").replace("float64", "")
    shapes = ", ".join(f"{tuple(a.shape)} {dtype(a)}".strip() for a in arrays)
    text += f"(called with inputs of shape {shapes}) " if shapes else ""
    return text + "(call the function yourself to see the full traceback)"


def _read_frame(exc: BaseException, message: str) -> str | None:
    """The learner's raising line in its frame: the one name that is None, or shapes."""
    frames = [f for f, _ in traceback.walk_tb(exc.__traceback__)]
    frame = next((f for f in frames[::-1] if not _whose(f.f_code.co_filename)), None)
    line = frame and traceback.extract_stack(frame, 1)[0].line
    try:  # a line that opens a block (`if x:`) parses with a body added
        tree = ast.parse(line if not line.endswith(":") else line + " pass")
    except (SyntaxError, AttributeError, TypeError):  # no line
        return None
    code, scope = frame.f_code, {**frame.f_globals, **frame.f_locals}
    plain = lambda n: type(n) is ast.Name or type(n) is ast.Attribute and plain(n.value)
    names = dict.fromkeys(ast.unparse(n) for n in ast.walk(tree) if plain(n))
    values = {n: _value(n, scope) for n in names}
    if "NoneType" not in message:
        items, arrays = values.items(), (np.ndarray, torch().Tensor)
        seen = [f"{n} {tuple(v.shape)}" for n, v in items if isinstance(v, arrays)]
        seen += [f"{n}: {len(v)} items" for n, v in items if type(v) in (tuple, list)]
        return f"(in that line: {', '.join(seen[:6])}) " if seen else None
    none = [n for n, v in values.items() if v is None]
    if not none and re.search(r"\)\.grad\b", line):  # p.detach().grad: a new tensor
        why = "a tensor made by a call (.detach(), .clone()) has no .grad: read the "
        return f"({why}parameter's own .grad) "
    name, why = (none or [""])[0], "follow it back to where it was set"
    if name.endswith(".grad"):
        why = "no backward() has reached it (a model's deepcopy does not copy .grad)"
    elif name.endswith(".bias"):
        why = "the layer has no bias (bias=False)"
    elif name in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]:
        why = "the caller left out this optional argument: test `is not None`"
    return f"(`{name}` is None here: {why}) " if len(none) == 1 else None


def _value(dotted: str, scope: dict):
    """``dotted``'s value in ``scope`` (attributes read, nothing called), or ..."""
    value = scope.get(dotted.split(".")[0], ...)
    with contextlib.suppress(Exception):  # (a property of the learner's may raise too)
        for attr in dotted.split(".")[1:]:  # an attribute of None: not this one
            value = ... if value is None else getattr(value, attr)
        return value
    return ...


def expect_raises(name: str, fn: Callable, exc_type, why: str, *args, **kwargs):
    try:
        with quiet_numerics():
            fn(*copied(args), **copied(kwargs))
    except NotImplementedError:
        return not_implemented(name)
    except exc_type as exc:  # `raise ValueError` alone tells the learner nothing
        said = f"raises {type(exc).__name__}"  # a hidden test's is "an exception":
        if not str(exc).strip() and said != "raises an exception":  # no message kept
            return wrong(name, f"{said} with no message: say why ({why})")
        return ok(name, f"{said} as it should ({why})")
    except Exception as exc:
        got = f"raised {type(exc).__name__} but {exc_type.__name__} was expected"
        return wrong(name, f"{got} ({why})")
    return wrong(name, f"did not raise {exc_type.__name__}: {why}")


def unpack(name: str, value, count: int, names: str):
    """Check ``value`` is a tuple of ``count`` items; return (items, problem)."""
    if value is None:
        return None, wrong(name, "returned None: did you forget `return`?")
    if not (sized := isinstance(value, (tuple, list))) or len(value) != count:
        got = f"a {type(value).__name__}" + (f" of {len(value)} items" if sized else "")
        why = f"returned {got}; expected a tuple of {count}: ({names})"
        return None, wrong(name, why)
    return tuple(value), None


# --- comparing arrays ---
def to_numpy(value):
    """A float64 NumPy copy of an array or tensor (or None if it is neither)."""
    if isinstance(value, torch().Tensor):  # .double() would drop an imaginary part
        unfit = value.is_complex() or value.dtype == torch().bool
        return None if unfit else value.detach().cpu().double().numpy()
    if isinstance(value, np.ndarray):  # not booleans, strings, objects, complex
        return value.astype(np.float64) if value.dtype.kind in "iuf" else None
    number = isinstance(value, (float, int, np.floating, np.integer))
    return np.asarray(value, dtype=np.float64) if number else None


def real(value, integer: bool = False):
    """One real number as an int or float, else TypeError (float() reads 0-d tensors)"""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds):
        wanted = "an int" if integer else "a number"
        raise TypeError(f"a {type(value).__name__} where {wanted} is expected")
    return int(value) if integer else float(value)


def rel_error(got, want) -> float:
    """max |got - want| / max |want|: CS231n's element-wise one blows up near 0."""
    got, want = to_numpy(got), to_numpy(want)
    if got is None or want is None or got.shape != want.shape:
        return float("inf")
    return abs_error(got, want) / max(float(np.max(np.abs(want), initial=0)), 1e-300)


def abs_error(got, want) -> float:
    got, want = to_numpy(got), to_numpy(want)
    return float(np.max(np.abs(got - want))) if got.size else 0.0


def shape_problem(name: str, value, shape, what="the output", shape_hints=None):
    """Why ``value`` is not an array of ``shape`` (``shape_hints``: why a shape)."""
    shape, hint = tuple(shape), ""
    if value is None and "gradient" in what:  # a .grad: not a value returned
        why = f"{what} is None: backward() did not reach it: the graph is cut "
        return wrong(name, why + "(torch.no_grad(), .detach() or NumPy on the way)")
    if value is None:
        return wrong(name, f"{what} is None: did you forget the `return` statement?")
    if isinstance(value, (tuple, list)):
        why = f"{what} is a {type(value).__name__} of {len(value)} items, "
        return wrong(name, why + f"expected one array of shape {shape}")
    if (array := to_numpy(value)) is None:
        kind = type(value).__name__
        kind = f"NumPy array of dtype {value.dtype}" if kind == "ndarray" else kind
        why = f"{what} is a {kind}, expected an array of real numbers of shape {shape}"
        return wrong(name, why)
    if array.shape != shape:
        pad = (1,) * (array.ndim - len(shape)) + shape  # lined up from the right
        pairs = [*zip(array.shape, pad, strict=True)] if len(pad) == array.ndim else []
        if shape_hints and array.shape in shape_hints:
            hint = ": " + shape_hints[array.shape]
        elif [n for n in array.shape if n != 1] == [n for n in shape if n != 1]:
            extra, kept = array.ndim - len(shape), "kept (keepdims=True, or made so?)"
            how = "an axis of size 1 " + (kept if extra == 1 else "dropped")
            how = "np.matrix keeps results 2-D" if type(value) is np.matrix else how
            how = f"{extra} axes of size 1 added (a reshape?)" if extra > 1 else how
            hint = f": {how}; the values are right in number, "
            hint += f"return them with the shape {shape}"
        elif pairs and all(g == w or w == 1 for g, w in pairs):  # broadcast
            other = tuple(1 if g == w else g for g, w in pairs)
            hint = f": what {shape} becomes when it meets a term of shape {other} "
            hint += "(shapes line up from the right): a term shaped for another layout?"
        elif array.size == 1 and (array.ndim < len(shape) or len(shape) > 1):
            hint = ": it looks reduced over every axis (check the `axis=`)"
        elif len(array.shape) == len(shape) - 1:
            hint = ": a dimension is missing (keepdims, or the wrong axis?)"
        elif sorted(array.shape) == sorted(shape):
            hint = ": the axes are swapped (a transpose?)"
        return wrong(name, f"{what} has shape {array.shape}, expected {shape}{hint}")
    if not np.all(np.isfinite(array)):
        bad, where = ~np.isfinite(array), ""  # which features hold them, if not all
        if len(rows := np.flatnonzero((r := _rows(bad, 1)).any(0))) < r.shape[1]:
            where = f", all in feature(s) {_fmt(rows, 6)} of axis 1"
        why = f"{what} contains {bad.sum()} NaN or infinite value(s){where}: a division"
        return wrong(name, why + " by zero, or a square root of a negative number?")


def broadcast_hint(message: str, args=()) -> str | None:
    """What the shapes in a broadcast error prove about the arrays, in words."""
    if "einstein" in message or not re.search("broadcast|must match the size", message):
        return None
    raw = re.findall(r"\(([\d, ]+)\)", message)  # NumPy's "(3,)"; torch's "(4)": a size
    found = {t: tuple(int(v) for v in t.replace(" ", "").split(",") if v) for t in raw}
    sizes = {v for numbers in found.values() for v in numbers}
    shapes = [numbers for text, numbers in found.items() if "," in text]
    batch = next((a.shape for a in args if len(getattr(a, "shape", ())) >= 2), ())
    n, d = batch[:2] or (0, 0)  # no batch: no test below holds, the generic hint
    odd = [s for s in shapes if len(s) == len(batch) and s != tuple(batch)]
    if len(batch) == 2 and odd:  # a 2-D operand: say how it lines up, not what it is
        why = f"(x is ({n}, {d}) and an array of shape {odd[0]} does not line up "
        why += "with it: shapes line up from the right, so one value per feature "
        return why + f"needs the shape ({d},) or (1, {d}), one per example ({n}, 1)) "
    if len(batch) == 2 and n != d and {n, d} & sizes:  # said, not guessed: which
        why = f"(x is ({n}, {d}): what meets it lines up from the right: one value "
        why += f"per feature has the shape ({d},) or (1, {d}), one per example "
        return why + f"({n}, 1), as keepdims=True keeps it) "
    flat = [s for s in shapes if len(s) == 2 and np.prod(s) == np.prod(batch)]
    if len(batch) > 2 and flat and flat[0][1] != d:  # x reshaped, channels not last
        why = f"({flat[0]} holds x's {np.prod(batch)} values in {flat[0][1]} columns, "
        why += f"not one per channel: C = x.shape[1] = {d}; move the channels last, "
        why += "then reshape to (-1, C): "
        return why + f"x.transpose(0, 2, 3, 1).reshape(-1, {d})) "
    if len(batch) > 2 and (d,) in shapes and d != batch[-1] and tuple(batch) in shapes:
        why = f"(x has shape {tuple(batch)}: an array of {d} values, one per "
        why += f"channel, lines up with x's last axis ({batch[-1]} values), not "
        why += f"with the channels: give it the shape (1, {d}{', 1' * (len(batch) - 2)}"
        return why + ") or reduce with keepdims=True) "
    return "(a broadcasting error: print the shapes of the arrays combined) "


def channels_last(a):
    """(N, C, ...) as (N * ..., C), NumPy or torch, detached; 2-D input as it is."""
    if (a := a.detach() if hasattr(a, "detach") else a).ndim <= 2:
        return a
    move = np.moveaxis if isinstance(a, np.ndarray) else type(a).movedim
    return move(a, 1, -1).reshape(-1, a.shape[1])


def from_channels_last(rows, shape):
    """The inverse of :func:`channels_last` for an array of ``shape``."""
    if len(shape) <= 2:
        return rows
    move = np.moveaxis if isinstance(rows, np.ndarray) else type(rows).movedim
    return move(rows.reshape(shape[0], *shape[2:], shape[1]), -1, 1)


# --- describing a difference: its signature, and when it is evidence ---
def _rows(a, axis):
    """``a`` as (positions, features)."""
    if axis is None or a.ndim < 2:  # 1-D on axis 0: one value per feature (dgamma)
        return a.reshape((1, -1) if a.ndim == 1 and axis == 0 else (-1, 1))
    return np.moveaxis(a, axis, -1).reshape(-1, a.shape[axis])


def _fmt(values, limit=4) -> str:
    items = [f"{float(v):.4g}" for v in np.ravel(values)[:limit]]
    return ", ".join(items) + (", ..." if np.size(values) > limit else "")


def _trivial(a) -> bool:
    """Every value the same (more than one), or only 0, 1 and -1."""
    same = (a := np.ravel(a)).size > 1 and bool(np.all(a == a[0]))  # inf: no warning
    return a.size > 0 and (same or bool(np.all(np.isin(a, (-1.0, 0.0, 1.0)))))


def degenerate(got, want) -> str | None:
    """A degenerate answer ("every value is 0.5"), which many mistakes give, or None"""
    g, w = to_numpy(got), to_numpy(want)
    ordinary = g is None or w is None or not np.all(np.isfinite(g)) or not _trivial(g)
    if ordinary or _trivial(w) and g.shape == w.shape:
        return None
    if len(values := np.unique(g)) == 1:
        return f"every value is {values[0]:.4g}"
    return "it holds only the values " + " and ".join(f"{v:g}" for v in values)


def _named(value, known: Mapping[str, object]) -> str | None:
    """``value``'s name: ``known``, the last input's N, L or H·W, N·L or N·H·W, 2, -1"""
    v, known, direct, derived = np.asarray(value, float), dict(known or {}), [], []
    n, *where = [s for i, s in enumerate(_SIZES[0]) if i != 1] if _SIZES else [0]
    p, head = int(np.prod(where)), {1: "L", 2: "H·W"}.get(len(where), "")
    found = {"N": n, head: p, f"N·{head}": n * p} if where else {"N": n}
    have = {k for k in known.values() if isinstance(k, (int, np.integer))}
    known |= {f"{k} = {c}": c for k, c in found.items() if c > 2 and c not in have}
    plain, simple = {"2": 2.0, "1/2": 0.5, "-1": -1.0, "1": 1.0}, None
    for label, n in list(known.items()):  # a count N: the ratios (N + a)/(N + b)
        if isinstance(n, (int, np.integer)) and n > 2 and not isinstance(n, bool):
            head, values = label.split(" = ")[0], map(to_numpy, known.values())
            numbers = [k for k in values if k is not None and k.size == 1]
            for a, b in itertools.permutations(range(-2, 3), 2):
                term = [f"({head}{c:+d})" if c else head for c in (a, b)]
                ratio = (n + a) / (n + b)
                if not any(np.isclose(k, ratio) for k in [*numbers, 1 / n, 2, 0.5]):
                    known[f"{term[0]}/{term[1]} with {head} = {n}"] = ratio
    for label, k in {**known, **plain}.items():
        if (k := to_numpy(k)) is None or (k.size != 1 and k.shape != v.shape):
            continue
        with np.errstate(all="ignore"):
            forms = {label: k, f"1/({label})": 1 / k, f"-({label})": -k}
            if " with " not in label:  # a ratio of counts times 2: a coincidence
                forms.update({f"2·({label})": 2 * k, f"-2·({label})": -2 * k})
                forms[f"({label})/2"] = k / 2  # e.g. the sum over 2 where N belongs
            forms.update({f"sqrt({label})": np.sqrt(k), f"1/sqrt({label})": k**-0.5})
            forms.update({f"({label})^2": k * k, f"1/({label})^2": 1 / (k * k)})
        for name, x in forms.items():
            if np.all(np.isfinite(x)) and np.allclose(v, x, rtol=1e-6, atol=1e-12):
                if label not in plain:
                    (direct if name == label else derived).append(name)
                simple = simple or (label if name == label and label in plain else None)
                break
    return ns[0] if len(ns := direct or ([] if simple else derived)) == 1 else simple


def _label(name: str | None) -> str:
    """ " = name" after a number, unless the name is the number (2, -1)"""
    return f" = {name}" if name and name not in ("2", "1/2", "-1", "1") else ""


def _permuted(g, w, close) -> str | None:
    """The right values in the wrong places: which axis order they follow."""
    if close(g, w) or not close(np.sort(g.ravel()), np.sort(w.ravel())):
        return None  # in their places (close is looser than tol), or other values
    for perm in itertools.permutations(range(w.ndim)):
        if list(perm) != sorted(perm) and close(g.ravel(), w.transpose(perm).ravel()):
            why = "the right values in the wrong places: they come in the order of "
            why += f"the expected array with its axes moved to {perm} (a reshape "
            return why + "without the transpose it needs, or a transpose not undone?)"
    for axis in (a for a in range(w.ndim) if close(g, np.flip(w, a))):
        return f"the right values in reverse order along axis {axis} (sorted down?)"
    return "the right values in the wrong places"


def _precision(got, err, want, dtype) -> str | None:
    """The answer's rounding as the cause: to decimals, a narrow float, an integer."""
    if "int" in str(dtype) and not np.array_equal(want, np.round(want)):
        return f"its dtype is {dtype}, and the right values have fractions"
    if np.array_equal(got, np.round(got)):  # whole numbers fit every format
        return None
    for k in range(1, 7):  # round(value, k): k decimals, and off by less than 10^-k
        rounded = np.all(want == np.round(want, k))  # then rounding is no mistake
        near = np.abs(got - want).max() <= 10.0**-k and not rounded
        if near and np.allclose(got, np.round(got, k), 0, 1e-13):
            return f"its values are rounded to {k} decimals: return them unrounded"
    formats = (("bfloat16", 7, 16), ("float16", 10, 16), ("float32", 23, 1e4))
    for fmt, bits, most in formats:  # the narrowest first: each fits in the next
        unit = 2.0 ** -(bits + 1)  # expected values of that format: no cause either
        fits = lambda a, u=unit: np.array_equal(s := np.frexp(a)[0] / u, np.round(s))
        if fits(got) and not fits(want) and err <= most * unit:
            why = f"its values are {fmt} numbers and the error is at {fmt}'s rounding "
            return why + f"level ({unit:.0e}): compute in float64, as the input is"


def describe(got, want, *, tol=1e-8, axis=1, known=None, small=(), causes=None, **more):
    """How ``got`` differs from ``want`` (Karpathy's ``cmp``); more: directions, twin"""
    g, w = to_numpy(got), to_numpy(want)
    fits = g is not None and w is not None and g.shape == w.shape and g.size > 0
    if not fits or not (np.all(np.isfinite(g)) and np.all(np.isfinite(w))):
        return None
    if (seen := degenerate(g, w)) or g.size == 1:
        return seen  # one number is a multiple of any other: no signature
    causes, scale = dict(causes or {}), max(float(np.abs(w).max()), 1e-300)
    close = lambda a, b: float(np.abs(a - b).max()) <= max(tol, 1e-9) * scale
    say = lambda key, text: f"{text}: {causes[key]}" if causes.get(key) else text
    if moved := _permuted(g, w, close):
        return say("permuted", moved)
    if close(g, -w):
        return say("sign", "the right magnitude with the wrong sign everywhere")
    if close(g, (c := float(np.vdot(g, w) / max(np.vdot(w, w), 1e-300))) * w):
        tag = f" = {n}" if (n := _named(c, known)) else ""  # key: "factor n"
        value = n if n in ("2", "1/2", "-1") else f"{c:.4g}{tag}"
        value = f"1 + {c - 1:.2g}" if f"{c:.4g}" == "1" else value  # 1 - 4e-05
        if abs(c) < 1e-9:  # a sum of what sums to 0: a centred term, x - mean?
            return f"every value is 0 to round-off ({np.abs(g).max():.1g} at most)"
        return say(f"factor{tag[2:]}", f"off by the constant factor {value} everywhere")
    if close(g, w + (off := float(np.mean(g - w)))):
        tag = f" = {n}" if (n := _named(off, known)) else ""  # key: "offset n"
        return say(f"offset{tag[2:]}", f"off by one constant offset, {off:.4g}{tag}")
    c, d = np.linalg.lstsq(np.c_[w.ravel(), np.ones(w.size)], g.ravel(), rcond=None)[0]
    both = abs(c - 1) > 1e-6 and abs(d) > 1e-6 * scale and np.ptp(w) > 1e-6 * scale
    if both and w.size > 2 and close(g, c * w + d):  # two numbers fit any c and d
        a, b = (f"{v:.4g}" + _label(_named(v, known)) for v in (c, d))
        text = f"the right value times {a}, plus {b}, everywhere"
        return say("factor and offset", text)
    found = _along(g, w, axis, more.get("directions") or {}, close, say)
    twin = t if np.shape(t := to_numpy(more.get("twin"))) == g.shape else None
    return found or _per_feature(g, w, axis, close, say, known, small, tol, twin)


def _along(g, w, axis, directions, close, say) -> str | None:
    """The difference g - w is, per feature, along one direction or two."""
    d = _rows(g - w, axis)
    vs = {k: _rows(to_numpy(v), axis) for k, v in directions.items()}
    for names in [*itertools.combinations(vs, 1), *itertools.combinations(vs, 2)]:
        b = np.stack([vs[n] for n in names], -1)  # (rows, features, k)
        with np.errstate(all="ignore"):
            rhs = np.einsum("rfi,rf->fi", b, d)[..., None]
            try:
                coef = np.linalg.solve(np.einsum("rfi,rfj->fij", b, b), rhs)[..., 0]
            except np.linalg.LinAlgError:  # a direction that is zero
                continue
        if np.all(np.isfinite(coef)) and close(d, np.einsum("rfi,fi->rf", b, coef)):
            key, how = " and ".join(names), ("a multiple of ", "a combination of ")
            text = "the difference from the right answer is, feature by feature, "
            return say(f"along {key}", text + how[len(names) - 1] + key)


def _per_feature(g, w, axis, close, say, known, small, tol, twin) -> str | None:
    """describe per feature: a factor, an offset; else float32-sized or confined"""
    feature, scale = ("feature", "channel")[g.ndim > 2], max(np.abs(w).max(), 1e-300)
    g, w, twin = (None if a is None else _rows(a, axis) for a in (g, w, twin))
    with np.errstate(all="ignore"):
        per = np.sum(g * w, axis=0) / np.sum(w * w, axis=0)
    if g.shape[1] > 1 and np.all(np.isfinite(per)) and close(g, per * w):
        off_one, label = np.flatnonzero(np.abs(per - 1) > 1e-6), _named(per, known)
        if g.shape[0] == 1 and not label or not len(off_one):  # no signature: a
            return None  # vector is a multiple of any; one row: no float32 reading
        if label or len(off_one) == len(per):
            named = f", {label}" if label else ""
            text = f"each {feature} is off by its own factor{named} ({_fmt(per)})"
            return say(f"{feature} factor" + (f" {label}" if label else ""), text)
        how = f"by the factor(s) {_fmt(per[off_one])}"
        return _confined(off_one, feature, small, say, how, ", where eps matters")
    if g.shape[0] > 1 and g.shape[1] > 1 and close(g, w + (shift := (g - w).mean(0))):
        named = f", {label}" if (label := _named(shift, known)) else ""
        text = f"each {feature} is shifted by its own offset{named} ({_fmt(shift)})"
        return say(f"{feature} offset" + (f" {label}" if label else ""), text)
    mine, theirs = (np.abs(a - w).max(0) for a in (g, w if twin is None else twin))
    if np.all(mine <= 30 * theirs) and 30 * mine.max() >= theirs.max() > 0:
        why = "errors of float32's size, feature by feature (PyTorch's in float32: "
        why += f"{theirs.max() / scale:.1e}): a step in float32 (.float(), "
        return why + "np.float32): compute in float64"
    ix = np.flatnonzero((err := np.abs(g - w).max(0) / scale) > tol)
    if 0 < len(ix) < len(err):
        return _confined(ix, feature, small, say, f"(rel. error up to {err.max():.1e})")


def _confined(bad, feature, small, say, how, note="") -> str:
    """An error confined to some features; whether they have a tiny variance."""
    which = ", ".join(str(int(i)) for i in bad[:6]) + (", ..." if len(bad) > 6 else "")
    plural, verb, it = ("", "is", "it") if len(bad) == 1 else ("s", "are", "they")
    text = f"only {feature}{plural} {which} {verb} off {how}"
    if len(small) and {int(i) for i in bad} == {int(i) for i in small}:
        text += f"; {it} {verb} the one{plural} with a tiny variance{note}"
        return say("small variance", text)
    return say(f"only some {feature}s", text + "; the others are right")


# --- a normalisation's stages, read back from its output ---
def _match(value, candidates: Mapping[str, object], tol=1e-7, floor=1e-300):
    """The ``candidates`` equal to ``value``, all (" or "): one would be a guess."""
    found = []
    for name, cand in candidates.items():
        try:
            cand = np.broadcast_to(np.asarray(cand, dtype=float), value.shape)
        except ValueError:  # a shape that cannot be this value's
            continue
        if np.abs(value - cand).max() <= tol * max(float(np.abs(cand).max()), floor):
            found.append(name)
    return " or ".join(found) or None


def wrong_axes(out, x, gamma, beta, *, eps, axes, tol=1e-8) -> str | None:
    """The axes, not ``axes``, over which ``out``'s statistics were taken, or None."""
    g, x = to_numpy(out), to_numpy(x)
    if g is None or x is None or g.shape != x.shape or x.ndim < 2:
        return None
    view, scale = [1, -1] + [1] * (x.ndim - 2), max(float(np.abs(g).max()), 1e-300)
    gamma, beta = (np.reshape(to_numpy(t), view) for t in (gamma, beta))
    for k in range(1, x.ndim + 1):
        for other in itertools.combinations(range(x.ndim), k):
            mu, var = x.mean(other, keepdims=True), x.var(other, keepdims=True)
            with np.errstate(all="ignore"):
                want = gamma * (x - mu) / np.sqrt(var + eps) + beta
            if set(other) != set(axes) and np.abs(g - want).max() <= tol * scale:
                how = f"this normalisation takes them over axes {tuple(axes)}"
                return f"the statistics are taken over axes {other}; {how}"


def stages(
    out, x, gamma, beta, *, eps, means=None, variances=None, groups=None, scales=None
) -> str | None:
    """m and s of ``out = gamma * (x - m) / s + beta`` per column, named if known"""
    o, x = to_numpy(out), to_numpy(x)
    if o is None or x is None or o.shape != x.shape or x.ndim != 2:
        return None
    gamma, beta = (np.broadcast_to(to_numpy(t), x.shape) for t in (gamma, beta))
    groups, found = np.zeros(len(x), int) if groups is None else np.asarray(groups), {}
    with np.errstate(all="ignore"):  # how gamma and beta were applied
        readings = {"": (o - beta) / gamma, "gamma and beta are not applied": o}
        readings["gamma and beta are swapped"] = (o - gamma) / beta
        readings["beta is added before the scale"] = o / gamma - beta
        readings |= {"gamma is not applied": o - beta, "beta is not applied": o / gamma}
    for affine, y in readings.items():
        found[affine] = _read_stages(y, x, groups, eps, means, variances, 1e-7, scales)
        if found[affine] == "right":  # right stages: the difference is elsewhere
            return affine and f"{affine}: out = gamma * x_hat + beta" or None
    m = next(iter(means.values())) if means else x.mean(0)  # x_hat's right values in
    v = next(iter(variances.values())) if variances else x.var(0)  # the wrong places?
    want, hat = (x - np.asarray(m)) / np.sqrt(np.asarray(v) + eps), readings[""]
    close = lambda a, b: np.allclose(a, b, 0, 1e-7 * np.abs(want).max())
    rows = [groups == g for g in np.unique(groups)]  # per rank: ranks never mix
    moved = [_permuted(hat[r], want[r], close) or close(hat[r], want[r]) for r in rows]
    if all(moved) and (said := [t for t in moved if t is not True]):
        return f"x_hat = (out - beta) / gamma holds {max(said, key=len)}"
    return found[""]


def _times(value, base, tol) -> str | None:
    """``value`` as ``base`` times "c = name", a named number other than 1."""
    base = np.broadcast_to(np.asarray(base, dtype=float), value.shape)
    with np.errstate(all="ignore"):
        c = float(np.vdot(value, base) / np.vdot(base, base))
        fits = np.abs(value - c * base).max() <= tol * np.abs(value).max()
    name = fits and abs(c - 1) > 1e-6 and _named(c, {})
    return name and (name if re.fullmatch(r"\S+ = \d+", name) else f"{c:.4g} = {name}")


def _read_stages(y, x, groups, eps, means, variances, tol, scales=None):
    """``stages`` for one reading of the output as x_hat = (x - m) / s."""
    m, s = np.empty(x.shape), np.empty(x.shape)
    with np.errstate(all="ignore"):
        for rows in (groups == label for label in np.unique(groups)):
            xc = x[rows] - x[rows].mean(0)
            a = (xc * (y[rows] - y[rows].mean(0))).sum(0) / (xc * xc).sum(0)
            c = y[rows].mean(0) - a * x[rows].mean(0)
            if not np.abs(a * x[rows] + c - y[rows]).max() <= tol * np.abs(y).max():
                return None
            s[rows], m[rows] = 1 / a, -c / a
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(m))):
        return None
    means = means if means is not None else {"the batch mean": x.mean(0)}
    means = {**means, "the median, not the mean": np.median(x, 0)}
    means["the minimum (min-max scaling?), not the mean"] = x.min(0)
    if not variances:
        variances = {"the biased variance": x.var(0)}
        variances["the unbiased variance (n - 1)"] = x.var(0) * len(x) / (len(x) - 1)
    forms = dict(scales or {})  # named scales first, then the forms below
    with np.errstate(all="ignore"):
        for name, v in ((k, np.asarray(a, dtype=float)) for k, a in variances.items()):
            forms[f"sqrt(v + eps), v = {name}"] = np.sqrt(v + eps)
            forms[f"sqrt(v) without eps, v = {name}"] = root = np.sqrt(v)
            forms[f"sqrt(v) + eps (eps outside the root), v = {name}"] = root + eps
            forms[f"v + eps (no square root), v = {name}"] = v + eps
        right_m, right_s = next(iter(means)), next(iter(forms))
        over = np.asarray(means[right_m], dtype=float) / forms[right_s]
    means["the mean divided by the scale (as x - mu / s gives)"] = over
    got_m, got_s = _match(m, means, tol, np.abs(x).max()), _match(s, forms, tol)
    got_m = right_m if right_m in (got_m or "").split(" or ") else got_m
    got_s = right_s if right_s in (got_s or "").split(" or ") else got_s
    if got_m == right_m and got_s == right_s:
        return "right"
    usual, var = "none of the usual ones", next(iter(variances.values()))
    centring = got_m or f"{usual} (m - batch mean: {_fmt(m[0] - x.mean(0))})"
    wide = x.shape[-1] > 1  # one column: "one number for every column" says nothing
    if not got_m and wide and np.ptp(m) <= 1e-9 * np.abs(m).max():  # one number
        centring = f"one number for every column, {m.flat[0]:.4g}"
    elif not got_m and (k := _times(m, means[right_m], tol)):  # a count off: sum / N
        centring = f"{right_m} times {k}"
    ratio = _fmt((s / np.broadcast_to(forms[right_s], s.shape))[0])
    scale = f"is {usual} (s / sqrt(var + eps): {ratio})"
    if k := _times(s * s - eps, var, tol):  # sqrt(k * var + eps): a count off again
        scale = f"divides by sqrt(v + eps) with v = {next(iter(variances))} times {k}"
    scale = f"divides by {got_s}" if got_s else scale
    if not got_s and wide and np.ptp(s) <= 1e-9 * np.abs(s).max():
        scale = f"divides by one number for every column, {s.flat[0]:.4g}"
    with np.errstate(all="ignore"):  # sqrt(v + e) with another e, the same for all
        e = s * s - np.asarray(var, dtype=float)
    same, e0 = _named(e.flat[0], {"eps": eps}), e.flat[0]  # e < 0, unnamed: no eps slip
    named = any(k in (got_s or "") for k in scales or {})  # one column fits any e
    eps_like = (e0 > 0 or same) and (wide or e0 < np.mean(var) / 100)
    if got_s != right_s and not named and np.ptp(e) <= 1e-3 * abs(e0) != 0 and eps_like:
        scale = f"divides by sqrt(var + e) with e = {e0:.3g}"
        scale += f" = {same}" if same else f", not eps = {eps:g}"
    scale += " (right)" * (got_s == right_s)
    where = f"the mean used is {centring}{' (right)' * (got_m == right_m)}; the scale "
    return f"out = gamma * (x - m) / s + beta per feature, where {where}{scale}"


def ema_problem(
    what, new, old, batch, momentum, known=None, causes=None, statistics=None, **more
) -> str:
    """How a running average ``new`` differs from ``(1 - m) old + m batch``, in words"""
    new, old, batch = (np.ravel(to_numpy(t)) for t in (new, old, batch))
    causes, right = dict(causes or {}), (1 - momentum) * old + momentum * batch
    if np.allclose(new, old, rtol=1e-12, atol=0):
        should = f"it should move a fraction {momentum:g} of the way to the batch's"
        return f"{what} did not change in a training step; {should} value"
    if np.allclose(new, old + momentum * batch, rtol=1e-9, atol=0):  # no decay
        return f"{what} = old + momentum * batch: multiply the old by (1 - momentum)"
    with np.errstate(all="ignore"):
        used = (new - old) / (batch - old)
        stat = (new - (1 - momentum) * old) / momentum
    if np.all(np.isfinite(used)) and np.ptp(used) <= 1e-8 * max(abs(used[0]), 1e-12):
        key = "momentum" + (named := _label(_named(used[0], known)))[2:]  # " = name"
        text = f"{what} moved by the fraction {used[0]:.4g}{named}"
        text += f" of the way to the batch's value; PyTorch moves it by {momentum:.4g}"
        for k in (2, 3) if not named and 0 < momentum < 1 else ():  # k updates a call
            if np.isclose(used[0], 1 - (1 - momentum) ** k, rtol=1e-8, atol=0):
                text += f", and 1 - (1 - {momentum:g})^{k} = {used[0]:.4g} is what {k}"
                return text + " updates in a row give: one update per training call"
        return f"{text}: {causes[key]}" if key in causes else text
    if found := _match(stat, statistics or {}, 1e-9):  # another statistic averaged in
        return f"{what} averages in {found}, not the batch's right statistic"
    edits = neighbours(*more["program"]) if more.get("program") else {}
    if one := _listed(new, right, edits, rel_error, 1e-9, what):  # one edit of it
        return one
    if 1e-9 < (err := rel_error(new, right)) <= 4e-6:  # and no listed statistic fits
        return f"{what} is PyTorch's to {err:.1e}: float32 rounding, or a term as small"
    if seen := describe(stat, batch, axis=0, known=known, causes=causes):
        return f"{what} averages in a batch statistic that is {seen}"
    why = f"{what} is not PyTorch's; (new - (1 - momentum) * old) / momentum is "
    return why + f"PyTorch's batch statistic times {_fmt(stat / batch)}"


def compare(name, got, want, *, tol, diagnoses=None, what="the output", **options):
    """``got`` vs ``want``, a Result: the diagnosis that fits, else describe, readers"""
    pop, w, returns = options.pop, to_numpy(want), options.pop("returns", {})
    metric, hint, program = pop("metric", "rel"), pop("hint", ""), pop("program", None)
    readers, invariants, swap, alias = pop("readers", ()), pop("invariants", ()), "", ""
    hints = {**_sizes(got, w, returns), **(pop("shape_hints", {}) or {})}
    order, near = f"return ({', '.join(returns)}) in this order", max(tol, 1e-9)
    for (key, other), theirs in zip(returns.items(), pop("returned", ()), strict=False):
        shared = isinstance(got, np.ndarray) and isinstance(theirs, np.ndarray)
        if key != what and shared and np.may_share_memory(got, theirs):
            alias = f"{what} is the same array as {key}: compute each as its own array"
        swapped = rel_error(got, other) <= near and rel_error(theirs, want) <= near
        if swapped and rel_error(other, w) > 10 * near:
            swap = f"{what} holds the expected {key} and the other way round: {order}"
    if swap and np.shape(got) != w.shape:
        return wrong(name, swap)
    same = (g := to_numpy(got)) is not None and g.ndim == w.ndim
    short = np.subtract(w.shape, g.shape) if same else ()
    for axis in np.flatnonzero(short):  # the expected one with entries cut off an axis?
        k, n = short[axis], w.shape[axis]
        for part, kept in (("first", range(k, n)), ("last", range(n - k))):
            if k > 0 and rel_error(g, w.take(kept, axis)) <= near:
                why = f"the right values except the {part} {k} along axis {axis} "
                hints[g.shape] = why + "(a loop or slice skips them)"
    if (problem := shape_problem(name, got, w.shape, what, hints)) is not None:
        return problem
    measure = rel_error if metric == "rel" else abs_error
    label = "max rel. error" if metric == "rel" else "max abs. error"
    if (err := measure(got, w)) <= tol:
        return ok(name, f"{label} {err:.1e} (expect < {tol:.0e})", err, tol)
    if options.get("source"):  # the right function of a slipped input
        diagnoses = {**slips(*options.pop("source")), **(diagnoses or {})}
    if (listed := _listed(g, w, diagnoses, measure, near, what)) or swap or alias:
        return wrong(name, "; ".join(filter(None, (listed or swap, alias))), err, tol)
    shape = describe(g, w, tol=tol, **options)  # none listed: its shape
    by_others = " = " not in (shape or "") and err > 4e-6  # not at rounding size
    for key, other in returns.items() if by_others else ():
        o = to_numpy(other)  # a named multiple of another output's expected value
        if o is None or o.shape != g.shape or rel_error(o, w) <= near:
            continue
        c = float(np.vdot(g, o) / max(np.vdot(o, o), 1e-300))
        factor = _named(c, options.get("known"))
        if factor and factor != "1" and rel_error(g, c * o) <= near:
            shape = f"it is the expected {key} times {c:.4g} = {factor}"
    named = shape and any(c in shape for c in (options.get("causes") or {}).values())
    strong = named or (shape or "").startswith(("the right magnitude", "the right va"))
    edits = neighbours(*program) if program and not strong else {}
    if one := _listed(g, w, edits, measure, near, what):
        return wrong(name, one, err, tol)  # the reference with one edit reproduces it
    stage = next(filter(None, (read(g) for read in readers)), None)
    if stage and "none of the usual" not in stage and not named:
        shape = None  # the stage reader names what the shape only describes
    if not (shape or stage):
        stage = next(filter(None, (check(g) for check in invariants)), None)
    message = _precision(g, err, w, getattr(got, "dtype", "")) or shape
    rounding = not (message or stage) and w.size > 2  # or a factor 1 + 6e-09
    if (rounding or "factor 1 + " in (message or "")) and 1e-9 < err <= 4e-6:
        message = "an error of float32's rounding size (6e-08) with no pattern: a step "
        message += "in float32 (.float(), np.float32, an integer tensor plus a float "
        message += "in PyTorch), or a term that small added or left out (an eps?)"
    where = tuple(map(int, np.unravel_index(abs(d := g - w).argmax(), d.shape)))
    if message:
        detail = f"{what}: {message} ({label} {err:.1e}, worst at index {where})"
    elif stage:
        detail = f"{stage}; {label} {err:.1e}"
    else:  # with the digits that tell the two numbers apart
        d = 6 if f"{g[where]:.6g}" != f"{w[where]:.6g}" else 15
        detail = f"{label} {err:.1e} (expect < {tol:.0e}); worst at index {where}: "
        detail += f"got {g[where]:.{d}g}, expected {w[where]:.{d}g}"
    return wrong(name, detail + (f". Hint: {hint}" if hint else ""), err, tol)


# --- the reference's one-edit neighbourhood: a wrong answer read as one change ---
_OPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
_OPS |= {ast.Pow: ast.Mult}  # x ** 2 written x * 2
_CALLS = {"mean": "sum", "sum": "mean", "var": "std", "std": "var"}
_KEYS = {"ddof": (0, 1), "axis": (0, 1, -1, (0, 1))}


def _variants(node, names):
    """Expressions one edit from ``node``: an operator, operand, name, call, keyword."""
    if isinstance(node, ast.Name) and node.id in names:  # another of its shape
        same = [n for n in names if n != node.id and names[n] == names[node.id]]
        yield from (ast.Name(n, ast.Load()) for n in same)
    if isinstance(node, ast.BinOp):
        (a, op, b), kind = (node.left, node.op, node.right), type(node.op)
        yield from (a, b, *([ast.BinOp(a, _OPS[kind](), b)] if kind in _OPS else []))
        yield from [ast.BinOp(b, op, a)] if kind in (ast.Sub, ast.Div, ast.Pow) else []
        yield from [ast.BinOp(ast.Constant(1), op, b)] if kind is ast.Div else []
        if isinstance(a, ast.BinOp):  # (a - b) / c written a - b / c
            yield ast.BinOp(a.left, a.op, ast.BinOp(a.right, op, b))
        if isinstance(b, ast.BinOp):  # a / (n - 1) written a / n - 1
            yield ast.BinOp(ast.BinOp(a, op, b.left), b.op, b.right)
        if re.fullmatch(r"-?0\.5", e := ast.unparse(b) if kind is ast.Pow else ""):
            top = ast.BinOp(a, op, ast.parse(e.replace("0.5", "1"), mode="eval").body)
            yield ast.BinOp(top, ast.Div(), ast.Constant(2))  # a ** -1 / 2: a slip
    if not isinstance(node, ast.Call):
        return
    args, kws, attr = node.args, node.keywords, getattr(f := node.func, "attr", 0)
    if len(args) == 1 and not kws or attr and not args:
        yield (inner := args[0] if args else f.value)  # the call left out
        method = lambda e: ast.Call(ast.Attribute(e, attr, ast.Load()), [], kws)
        one = lambda e: ast.Call(f, [e], []) if args else method(e)
        if isinstance(inner, ast.BinOp):  # f(a + b) written f(a) + b, f(a) + f(b)
            yield ast.BinOp(one(inner.left), inner.op, inner.right)
            yield ast.BinOp(one(inner.left), inner.op, one(inner.right))
    if attr in _CALLS:
        yield ast.Call(ast.Attribute(f.value, _CALLS[attr], ast.Load()), args, kws)
    for i, k in enumerate(kws):  # a keyword left out, or given another value
        yield ast.Call(f, args, rest := kws[:i] + kws[i + 1 :])
        for v in _KEYS.get(k.arg, ()) if isinstance(k.value, ast.Constant) else ():
            yield ast.Call(f, args, new := [*rest, ast.keyword(k.arg, ast.Constant(v))])
            yield ast.Call(f, args, [*new, ast.keyword("keepdims", ast.Constant(True))])


def neighbours(program: str, env: Mapping, out: str) -> dict:
    """``program``'s one-edit variants that change ``out`` (keywords written out)."""
    tree, found, values, scope = ast.parse(program), {}, [], {"np": np, **env}
    want = _run(tree, scope, out)[out]
    names = {k: np.shape(v) for k, v in scope.items() if k != "np" and k[0] != "_"}
    targets = [t.id for line in tree.body for t in line.targets if t.id != out]
    for line, node in ((ln, n) for ln in tree.body for n in ast.walk(ln.value)):
        for new in _variants(node, names):
            edited = copy.deepcopy(tree, {id(node): new})
            run = _run(ast.fix_missing_locations(edited), {**env, "np": np}, out)
            name, value = line.targets[0].id, run and run[out]
            if value is None or value.shape != want.shape or np.isnan(value).any():
                continue
            vanish = any(_trivial(run[t]) > _trivial(scope[t]) for t in targets)
            if vanish or any(rel_error(value, v) < 1e-9 for v in (want, *values)):
                continue  # x_hat = 0 says little; no change, or an earlier edit's
            name = name if name == out else f"the {name} that {out} uses"
            why = f"it is the right formula with one change, in {name}: "
            why += f"`{ast.unparse(new)}` where `{ast.unparse(node)}` belongs"
            found[why], values = value, values + [value]
    return found


def _run(tree, scope, out):
    """``scope`` after running ``tree`` in it (``out`` an array), None if it raised."""
    with quiet_numerics(), contextlib.suppress(Exception):
        exec(compile(tree, "<reference>", "exec"), scope)  # the course's own program
        return scope | {out: np.asarray_chkfinite(scope[out], dtype=float)}  # or None


def slips(reference: Callable, x) -> dict:
    """``reference`` (the right answer, a function of ``x``) on slipped ``x``s."""
    if len(x) <= 2:  # too few to read a slip from
        return {}
    nonzero = [bool((row != 0).any()) for row in x]  # the examples not all zeros
    forms = {
        "x[1:] (x without its first example: a loop or slice from 1?)": x[1:],
        "x[:-1] (x without its last example: a range that stops one short?)": x[:-1],
        "x[:1] (the first example only)": x[:1],
        "|x| (the absolute values)": abs(x),
        "x without its examples of zeros (data, not padding)": x[nonzero],
        "x's distinct values (np.unique drops repeated values)": np.unique(to_numpy(x)),
    }
    found = {}
    for how, value in forms.items():
        with quiet_numerics(), contextlib.suppress(Exception):
            warnings.simplefilter("ignore")
            found[f"this is the right answer for {how}"] = reference(value)
    return found


def _sizes(got, want, returns) -> dict:
    """A 1-D answer of the wrong length, by the other outputs' sizes; or a matrix."""
    g = to_numpy(got)  # (D, D) for (D,) with the diagonal right: a matrix product
    if want.ndim == 1 and len(want) > 1 and np.shape(g) == want.shape * 2:
        if np.allclose(np.diagonal(g), want, 1e-6, 0):
            why = "the right values are its diagonal: a matrix product (A.T @ B, "
            return {g.shape: why + "np.dot) where (A * B).sum(axis=0) belongs"}
    got = np.shape(got) if isinstance(got, (np.ndarray, torch().Tensor)) else None
    if got is None or len(got) != 1 or want.ndim != 1:
        return {}
    lengths = got[0], len(want)  # the answer's and the expected one
    for key, shape in ((k, np.shape(v)) for k, v in returns.items()):
        mine, right = ([a for a, m in enumerate(shape) if m == n] for n in lengths)
        if len(shape) == 2 and len(mine) == len(right) == 1 and mine != right:
            one, per = (f"one value per index of axis {a[0]}" for a in (mine, right))
            why = f"{one} of {key} {shape}, where {per} is expected: reduce "
            return {got: why + f"over axis {mine[0]}, not {right[0]}"}
    return {}


def _listed(got, want, diagnoses, measure, near, what) -> str | None:
    """The listed mistake that reproduces ``got``; several, or a degenerate got: all."""
    fit = lambda c: measure(got, c) <= min(near, measure(c, want) / 10)
    pairs = ((m, to_numpy(c)) for m, c in (diagnoses or {}).items())
    matches = [m for m, c in pairs if getattr(c, "shape", 0) == want.shape and fit(c)]
    if _trivial(got) and _trivial(want):  # (0, 0) for (0, 1): any slip's, no reading
        return None
    seen, listed = degenerate(got, want) if matches else None, " | ".join(matches)
    if seen:
        which = "one candidate" if len(matches) == 1 else "candidates"
        why = f"{what}: {seen}, which many different mistakes give, so the check "
        return why + f"cannot say which ({which}: {listed})"
    if len(matches) < 2:
        return listed or None
    many = f"{what} is what each of {len(matches)} mistakes gives here"
    return f"{many}, so it cannot say which: {listed}"


# --- running a check body; modules ---
@functools.cache
def _whose(filename: str) -> str | None:
    """None for the learner's code; "check" for the course's, "library" else."""
    paths = [sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")]
    libs = tuple(str(Path(p).resolve()) for p in {*paths, sys.prefix, sys.base_prefix})
    try:
        path = str(Path(filename).resolve())
    except (OSError, ValueError):
        return None
    if path.startswith(str(Path(__file__).resolve().parents[1])):  # the helpers
        return "check"
    return "library" if path.startswith(libs) else None


def blame(exc: BaseException) -> str:
    """Who raised ``exc`` in a body: "learner", "check" (a bug), "value" (a library)"""
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # from the body on
    called = [_whose(frame.filename) or "learner" for frame in frames[1:]]
    if "learner" in called:
        return "learner"
    return "check" if not called or called[-1] == "check" else "value"


def run_check(name: str, body: Callable, quiet=False, strict=None, **defs) -> Report:
    """Run a check body (``defs``, exercise=fn: signatures first); raised: one ERROR"""
    try:
        sign = (order_problem(name, f, contract.SIGNATURES[k]) for k, f in defs.items())
        if (results := next((r for r in sign if r is not None), None)) is None:
            results = body()  # (a failed Result is falsy: no `or`)
    except CheckFailed:
        raise
    except Exception as exc:
        what, kind = f"{type(exc).__name__}: {exc}", blame(exc)
        if kind == "check":
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            detail = f"the check itself failed ({what}, in {Path(frame.filename).name} "
            detail += f"line {frame.lineno}): a bug in the course, not in your code; "
            detail += "please report it with this line"
        elif kind == "learner":
            detail = f"your code raised {raised(exc)} while the check used your result"
        else:
            found = [m for k, m in MEANINGS.items() if re.search(k, what)]
            what = "; ".join([what, *[*filter(None, [_no_graph(what), *found])][:1]])
            detail = f"the check could not use what your function returned ({what})"
        results = Result(name, ERROR, detail)
    results = [results] if isinstance(results, Result) else list(results)
    if not all(results) and (note := _dropped(name, defs.values())):
        results.append(note)
    return report(results, quiet=quiet, strict=strict)


def _dropped(name: str, defs) -> Result | None:
    """A statement making a new tensor and dropping it: `x.add(y)` for x.add_(y)."""
    fs = [f for d in defs for f in (vars(d).values() if isinstance(d, type) else [d])]
    for f in filter(inspect.isfunction, fs):  # a class: its own methods
        with contextlib.suppress(Exception):  # no source: nothing to read
            for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(f)))):
                call = node.value if isinstance(node, ast.Expr) else None
                attr = getattr(getattr(call, "func", None), "attr", "")  # a call's
                twin = all(hasattr(torch().Tensor, a) for a in (attr, attr + "_"))
                if twin and not any(k.arg == "out" for k in call.keywords):
                    why = f"your line `{ast.unparse(node)}` ({f.__name__}) makes a new "
                    why += f"tensor and drops it: {attr}_ works in place, or assign it"
                    return info(name, why)


def build_module(cls, label: str, *args, **kwargs):
    """``cls(*args, **kwargs)``, checked to be an ``nn.Module``: (module, problem)."""
    module, problem = call(label, cls, *args, **kwargs)
    if problem is None and not isinstance(module, torch().nn.Module):
        problem = wrong(label, f"built a {type(module).__name__}, not an nn.Module")
    elif problem is None and module.train() is not module:  # .double().train() chains
        problem = wrong(label, "train() did not return the module: return self")
    mro = type(module).__mro__[:-1]  # the learner's classes, then torch's
    mine = [k for k in mro if not k.__module__.startswith("torch")]
    own = [m for k in mine for m in vars(k) if m[0] != "_" and callable(vars(k)[m])]
    own = [m for m in own if not hasattr(torch().nn.Module, m)]  # a Keras call()?
    bare = not any({"forward", "__call__"} & {*vars(k)} for k in mine)
    if problem is None and own and bare:
        why = f"defines no forward(), so a call runs {mro[len(mine)].__name__}'s, "
        why += f"never {own[0]}(): PyTorch calls forward()"
        problem = wrong(label, f"{type(module).__name__} {why}")
    return (module, None) if problem is None else (None, problem)


def registration_problem(label, module, buffers, params, attrs=None):
    """Why ``module`` lacks a buffer, parameter (name: start or None) or attribute."""
    for kind, wanted, found, how in (
        ("buffer", buffers, dict(module.named_buffers()), "self.register_buffer(...)"),
        ("parameter", params, dict(module.named_parameters()), "nn.Parameter"),
    ):
        for key, start in wanted.items():
            if key not in found:
                why = "it does not exist"
                if isinstance(getattr(module, key, None), torch().Tensor):
                    why = f"it is a plain attribute: use {how}"
                why += ", so that state_dict saves it and .to() and .double() move it"
                return wrong(label, f"{key} is not a registered {kind}: {why}")
            got, dtype = found[key].detach().double(), found[key].dtype
            if start is not None and got.shape != start.shape:  # before its values
                why = f"{key} has shape {tuple(got.shape)}, not {tuple(start.shape)}: "
                return wrong(label, why + "one value per feature, as PyTorch's")
            if start is not None and not torch().equal(got, start.double()):
                return wrong(label, f"{key} should start as {start.tolist()}")
            if kind == "buffer" and key not in module.state_dict():
                why = "registered with persistent=False: state_dict() leaves it out"
                return wrong(label, f"{key} is {why}, so a saved model loses it")
            same = start is None or dtype == start.dtype  # int64: torch.full((C,), 1)
            if not same and (dtype.is_floating_point or start.is_floating_point()):
                why = f"{key} is {dtype}, not {start.dtype} as in PyTorch's module "
                return wrong(label, why + "(float buffers follow .double() later)")
    for attr, value in (attrs or {}).items():
        if getattr(module, attr, None) != value:
            why = f"module.{attr} is {getattr(module, attr, None)}, expected {value}: "
            why += "store the value passed in (default or keyword argument) as a plain "
            return wrong(label, why + "attribute")


def buffers_outside_graph(name: str, module) -> Result:
    """All buffers outside the graph (by requires_grad: mirroring keeps it), copyable"""
    buffers = module.named_buffers()  # a built module, run by the check already
    held = sorted(k for k, v in buffers if getattr(v, "requires_grad", 0))
    if held:
        why = f"{', '.join(held)} require grad after training steps: they are in the "
        why += "autograd graph (updated outside torch.no_grad()), so every step keeps "
        why += "its graph alive and copy.deepcopy(module) fails. Update the buffers "
        return wrong(name, why + "under torch.no_grad(), from detached statistics")
    try:
        copy.deepcopy(module)
    except Exception as exc:
        return wrong(name, f"copy.deepcopy(module) fails after training: {exc}")
    return ok(name, "no buffer requires grad; copy.deepcopy(module) works")


def uniform_problem(samples, low: float, high: float, what: str) -> str | None:
    """Why ``samples`` (rows: calls, columns: channels) are not U[low, high] draws"""
    if (x := to_numpy(samples)) is None or not x.size or not np.all(np.isfinite(x)):
        return f"{what}: not finite real numbers"
    if x.ndim == 2 and x.shape[1] > 1 and np.all(np.ptp(x, axis=1) == 0):
        why = f"{what}: at each call every channel gets the same value: draw one "
        return why + f"value per channel (shape ({x.shape[1]},))"
    (vs, counts), repeats = np.unique(x, return_counts=True), ""
    if len(vs) < x.size:  # a continuous draw repeats no value
        most = _fmt(vs[np.argsort(-counts, kind="stable")][: np.sum(counts > 1)], 3)
        ends = int(np.sum((x == low) | (x == high)))
        repeats = f"; only {len(vs)} distinct values among {x.size} (repeated: {most})"
        repeats += f", {ends} of them exactly at the ends of the range" * (ends > 1)
    x, width, mid = np.sort(x.ravel()), high - low, (low + high) / 2
    seen = f"from {x[0]:.3g} to {x[-1]:.3g}, mean {x.mean():.3g}, std {x.std():.3g}"
    if x[0] < low - 1e-9 * width or x[-1] > high + 1e-9 * width:
        return f"{what} must be uniform in [{low:g}, {high:g}]: values {seen}{repeats}"
    u, n = (x - low) / width, x.size
    distance = max(np.max(np.arange(1, n + 1) / n - u), np.max(u - np.arange(n) / n))
    if distance <= 2.5 / np.sqrt(n):  # a KS distance over it: chance < 1e-5
        return f"{what}: {repeats[2:]}" if repeats else None
    above, below = x[0] >= mid - 0.05 * width, x[-1] <= mid + 0.05 * width
    half = "above" if above else "below" if below else ""
    side = f" (one-sided: all {half} the middle)" if half else ""
    why = f"{what} must be uniform in [{low:g}, {high:g}]: {n} values {seen}{side}; "
    why += f"U[{low:g}, {high:g}] has mean {mid:g}, std {width / 12**0.5:.3g}"
    return why + repeats


def mine_or_reference(label: str, mine, reference, check, reference_name=None):
    """``mine`` if ``check()`` passes, else ``reference``: a notebook runs to its end"""
    try:
        passed = bool(check())
    except CheckFailed as exc:
        first, passed = str(exc).strip().splitlines()[:1], False
        print(f"{label}: its check failed ({first[0] if first else 'no detail'})")
    name = reference_name or getattr(reference, "__name__", "the reference")
    how = "yours passes its check" if passed else "not finished or not right yet"
    print(f"{label}: {how}, so the cells below use {'it' if passed else name}")
    return mine if passed else reference


def order_problem(label: str, fn, order: str) -> Result | None:
    """Wrong if a parameter named in ``order`` ("x, eps=1e-05") moved or differs"""
    try:
        mine = (signature := inspect.signature(fn)).parameters
    except (TypeError, ValueError):  # none to read (a builtin, a forged proxy's)
        return None
    want = inspect.signature(eval(f"lambda {order}: 0")).parameters  # noqa: S307
    place = lambda ps, n: [k for k, p in ps.items() if p.kind < 2 or k == n].index(n)
    shown = lambda d: repr(tuple(d) if isinstance(d, list) else d)  # not == (arrays)
    for name in (n for n in want if n in mine):
        a, b, empty = mine[name].default, want[name].default, inspect.Parameter.empty
        if place(mine, name) != place(want, name) or mine[name].kind > 1:
            why = "is elsewhere: a call by position fails or goes astray"
        elif mine[name].kind < want[name].kind and b is not empty:  # eps=... fails
            why = f"is positional-only (before the /): a call with {name}=... fails"
        elif a is not None and b is not empty and shown(a) != shown(b):  # None: a
            why = "has no default" if a is empty else f"defaults to {a!r}"  # sentinel
            why += f", the exercise's {'to ' * (a is not empty)}{b!r}"
        else:
            continue
        why = f"signature {signature}; the exercise's: ({order}): {name} {why}"
        return wrong(label, why)
