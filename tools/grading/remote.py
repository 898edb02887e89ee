"""The learner's functions, called from the grader's process.

While grading, a test cell does not run in the learner's kernel: it runs here,
in the grader's process, with the grader's own ``helpers.checks``, NumPy and
torch.  Each name the cell uses that the notebook defines (an exercise) is a
:class:`RemoteFunction`: calling it sends the arguments (drawn here, from
seeds chosen for this run) to the kernel, which runs the learner's function and
sends back only its *output*.  Whatever the submission does to the checks or to
NumPy inside its kernel, the comparison with PyTorch happens where it cannot
reach.

The wire, both ways through the kernel's own channel (an execute request and
its display output, tagged with a per-run secret):

* **to the kernel**: a pickle of the arguments (the grader's data, trusted).
* **from the kernel**: JSON with arrays as raw bytes (``decode`` rebuilds
  NumPy arrays, tensors, tuples, dicts, and ``torch.nn`` layers from their
  attributes; never a pickle, so nothing the submission sends can run code
  here).  Objects it cannot send by value (a learner's cache object, say) stay
  in the kernel behind a handle and go back as arguments by handle.
* Arrays the function changed in place, and the parameters, gradients and
  buffers of every module passed in, are copied back into the grader's
  objects, so a check sees what a call in the kernel would have done.
  **Not in a hidden test** (``Session.hidden``): there a change to an object
  the grader passed (an array, a tensor, a torch layer's parameters or
  buffers) stays in the kernel and is recorded in ``Session.changed``, and the
  worker fails the test; so no learner call can change what a hidden test
  computes its expected values from (attacks4 A04).  Only the exercises whose
  point is to change their arguments (``CHANGES_ARGUMENTS``) and the learner's
  own modules (a ``RemoteModule``) are written back, and gradients always.

Why not otter's or nbgrader's way: both run the tests inside the learner's
kernel, where the learner's code can replace them (the attack this module
exists to stop), and otter's isolation is Docker only.
"""

from __future__ import annotations

import base64
import builtins
import inspect
import json
import pickle
import secrets
import threading
from pathlib import Path

import numpy as np
import torch

from . import safe
from .kernel_side import MIME, _plain, load_state

MAX_REPLY = 64 * 1024 * 1024  # bytes of JSON accepted from the kernel
MAX_ITEMS = 10_000_000  # array elements per reply
MAX_DEPTH = 24


# The exercises whose point is to change their arguments in place (lesson 08's
# running statistics): their changes are written back in a hidden test too, and
# their checks compute every expected value before the call.
CHANGES_ARGUMENTS = frozenset(
    {"sync_batchnorm_forward", "sync_bn_forward", "merge_running_stats"}
)


def _differs(current, value) -> bool:
    """Whether the kernel's ``value`` for a tensor is other than ``current``."""
    new = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value)
    old = current.detach()
    if new.shape != old.shape:
        return True
    old, new = old.double(), new.to(old.device).double()
    nan = torch.isnan(old)
    return not (
        torch.equal(nan, torch.isnan(new)) and torch.equal(old[~nan], new[~nan])
    )


class RemoteError(Exception):
    """The call could not be made (a broken channel, an oversized reply...)."""


# --------------------------------------------------------------------------
# the kernel's side: sent once per kernel, kept under a per-run name
# --------------------------------------------------------------------------

KERNEL_CODE = (Path(__file__).parent / "kernel_side.py").read_text()


# --------------------------------------------------------------------------
# the grader's side
# --------------------------------------------------------------------------


class Opaque:
    """An object that stayed in the kernel (a learner's cache, say)."""

    def __init__(self, session, key: str, type_name: str):
        self._session, self._key, self.type_name = session, key, type_name

    def __repr__(self) -> str:
        return f"<{self.type_name} in the learner's kernel>"

    def __deepcopy__(self, memo):  # a handle: copies refer to the same object
        return self

    def __copy__(self):
        return self


def _error_class(name: str) -> type:
    """The exception type to raise here for one the learner's code raised."""
    found = getattr(builtins, name, None)
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return type(name, (Exception,), {})  # keeps the learner's type name


# The name of a learner's exception raised during a hidden test.
HIDDEN_ERROR = "an exception"


def learner_error(reply: dict, hidden: bool = False) -> Exception:
    """The exception to raise here for one the learner's code raised there.

    Its type name and message are the learner's text (``safe.learner_text``:
    one line, no control characters, capped).  In a hidden test
    (``hidden``) they could carry the test's inputs out: the exception is then
    of the same builtin kind (a check that expects a ValueError still sees
    one) but named ``HIDDEN_ERROR`` and without a message.
    """
    name = safe.learner_text(reply.get("raised", "Exception"), 100)
    message = safe.learner_text(reply.get("message", ""), 2000)
    if hidden:
        try:
            found = getattr(builtins, name, None)
            kind = isinstance(found, type) and issubclass(found, Exception)
            base = found if kind else Exception
            return type(HIDDEN_ERROR, (base,), {"__qualname__": HIDDEN_ERROR})()
        except (TypeError, ValueError):  # a builtin that needs arguments
            return type(HIDDEN_ERROR, (Exception,), {})()
    try:
        return _error_class(name)(message)
    except (TypeError, ValueError):  # a builtin that needs other arguments
        return type(name, (Exception,), {})(message)


class _Decoder:
    def __init__(self, session, args):
        self.session, self.args, self.items = session, args, 0

    def array(self, v) -> np.ndarray:
        shape = tuple(int(s) for s in v["shape"])
        count = int(np.prod(shape)) if shape else 1
        self.items += count
        if self.items > MAX_ITEMS:
            raise RemoteError("the kernel sent more than 10 million values")
        if v["__bnc__"] == "nd-other":
            items = v["items"]
            return (
                np.array(items, dtype=str).reshape(shape)
                if len(items) == count
                else np.array(items, dtype=str)
            )
        dtype = np.dtype(v["dtype"])
        if dtype.hasobject:
            raise RemoteError("object arrays are not accepted")
        data = base64.b64decode(v["b64"])
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()

    def __call__(self, v, depth=0):
        if depth > MAX_DEPTH:
            raise RemoteError("the kernel's reply is nested too deeply")
        if not isinstance(v, dict):
            if isinstance(v, (bool, int, float, str)) or v is None:
                return v
            raise RemoteError(f"unexpected {type(v).__name__} in the kernel's reply")
        kind = v.get("__bnc__")
        if kind == "f":
            return float(v["v"])
        if kind in ("nd", "nd-other"):
            return self.array(v)
        if kind == "npscalar":
            return np.dtype(v["dtype"]).type(self(v["v"], depth + 1))
        if kind == "tensor":
            import torch

            array = self.array(v["array"])
            tensor = torch.from_numpy(array) if array.dtype.kind in "biufc?" else array
            if v.get("torch_dtype") == "bfloat16" and isinstance(tensor, torch.Tensor):
                tensor = tensor.to(torch.bfloat16)
            if v.get("parameter"):
                return torch.nn.Parameter(tensor, requires_grad=v["requires_grad"])
            return (
                tensor.requires_grad_(v["requires_grad"])
                if v["requires_grad"]
                else tensor
            )
        if kind in ("tuple", "list"):
            items = [self(x, depth + 1) for x in v["items"]]
            return tuple(items) if kind == "tuple" else items
        if kind == "dict":
            return {str(k): self(x, depth + 1) for k, x in v["items"]}
        if kind == "arg":
            return self.args[int(v["index"])]
        if kind == "opaque":
            return self.session.opaque(v["id"], v["type"])
        if kind == "module":
            return self.module(v, depth)
        if kind == "rmodule":
            return self.session.remote_module(v["id"], v["type"], v["state"])
        raise RemoteError(f"unknown item {kind!r} in the kernel's reply")

    def module(self, v, depth):
        """A torch.nn layer rebuilt from its attributes: only torch's own classes."""
        import importlib

        import torch

        name, qualname = str(v["module"]), str(v["class"])
        if not name.startswith("torch.nn.modules.") or "." in qualname:
            raise RemoteError(f"refusing to rebuild {name}.{qualname}")
        cls = getattr(importlib.import_module(name), qualname, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise RemoteError(f"{name}.{qualname} is not a torch module")
        module = cls.__new__(cls)
        torch.nn.Module.__init__(module)
        for key, value in self(v["attrs"], depth + 1).items():
            setattr(module, key, value)
        for key, value in v["params"]:
            value = self(value, depth + 1)
            if value is not None and not isinstance(value, torch.nn.Parameter):
                value = torch.nn.Parameter(value)
            module._parameters[str(key)] = value
        for key, value in v["buffers"]:
            module._buffers[str(key)] = self(value, depth + 1)
        module._non_persistent_buffers_set = set(map(str, v["non_persistent"]))
        for key, value in v["children"]:
            module._modules[str(key)] = self(value, depth + 1)
        module.training = bool(v["training"])
        return module


class Session:
    """The channel to one submission's kernel: calls, handles, objects sent."""

    def __init__(self, execute, timeout: float = 60.0):
        """``execute(code) -> outputs`` runs code in the kernel (nbclient)."""
        self.execute = execute
        self.timeout = timeout
        self.nonce = secrets.token_hex(16)
        self.module_name = f"__bnc_channel_{self.nonce}"
        self.sent: dict[int, tuple[str, object]] = {}  # id(obj) -> (handle, obj)
        self.calls = 0
        # a hidden test runs: the learner's words (exceptions, the type names of
        # their objects) are not passed on (``learner_error``)
        self.hidden = False
        # what learner calls changed in the grader's objects during a hidden
        # test (not written back: the worker fails the test)
        self.changed: list[str] = []

    # -- handles --------------------------------------------------------------

    def remote_module(self, key: str, type_name: str, state: dict) -> RemoteModule:
        """The proxy of a learner's module kept in the kernel (one per object)."""
        for kept_key, kept in self.sent.values():
            if kept_key == key and isinstance(kept, RemoteModule):
                kept._bnc_sync(state)
                return kept
        type_name = "a module" if self.hidden else safe.learner_text(type_name, 100)
        found = RemoteModule(self, key, type_name, state)
        self.sent[id(found)] = (key, found)
        return found

    def opaque(self, key: str, type_name: str) -> Opaque:
        type_name = "an object" if self.hidden else safe.learner_text(type_name, 100)
        found = Opaque(self, key, type_name)
        self.sent[id(found)] = (key, found)
        return found

    def _state(self, module) -> dict:
        state = {}
        for name, p in module.named_parameters(recurse=True):
            grad = None if p.grad is None else p.grad.detach().cpu().numpy()
            state["p:" + name] = [p.detach().cpu().numpy(), grad]
        for name, b in module.named_buffers(recurse=True):
            state["b:" + name] = b.detach().cpu().numpy()
        return state

    def _outgoing(self, value):
        """Arguments for the pickle: modules and kernel objects by handle."""
        import torch

        if isinstance(value, torch.Tensor) and value.grad_fn is not None:
            return value.detach()  # a pickle takes leaves only
        if isinstance(value, Opaque):
            return {"__bnc__": "ref", "id": value._key}
        if isinstance(value, RemoteModule):
            return value._bnc_ref()
        if isinstance(value, torch.nn.Module):
            known = self.sent.get(id(value))
            if known is not None and known[1] is value:
                return {"__bnc__": "ref", "id": known[0], "state": self._state(value)}
            key = f"g{len(self.sent)}"
            self.sent[id(value)] = (key, value)
            blob = pickle.dumps(value)  # without .grad: the state carries it
            return {
                "__bnc__": "new",
                "id": key,
                "pickle": blob,
                "state": self._state(value),
            }
        if isinstance(value, tuple):
            return tuple(self._outgoing(v) for v in value)
        if isinstance(value, list):
            return [self._outgoing(v) for v in value]
        if isinstance(value, dict):
            return {k: self._outgoing(v) for k, v in value.items()}
        return value

    # -- calls ------------------------------------------------------------------

    def request(self, request: dict) -> dict:
        """One request to the kernel's side (``kernel_side.serve``), its reply."""
        blob = base64.b64encode(pickle.dumps(request)).decode()
        code = (
            "import sys as _s\n"
            f"if {self.module_name!r} not in _s.modules:\n"
            "    import types as _t\n"
            f"    _m = _t.ModuleType({self.module_name!r})\n"
            f"    exec({KERNEL_CODE!r}, _m.__dict__)\n"
            f"    _s.modules[{self.module_name!r}] = _m\n"
            f"_s.modules[{self.module_name!r}].serve({blob!r}, {self.nonce!r})\n"
        )
        return self._reply(self.execute(code))

    def call_many(self, name: str, calls: list[tuple[tuple, dict]]) -> list:
        """Call the learner's ``name`` once per (args, kwargs); results in order."""
        self.calls += len(calls)
        reply = self.request(
            {
                "name": name,
                "calls": [
                    (self._outgoing(tuple(args)), self._outgoing(dict(kwargs)))
                    for args, kwargs in calls
                ],
            }
        )
        if "missing" in reply:  # the name asked for, not the kernel's words
            raise NameError(f"name {name!r} is not defined")
        results = reply.get("results", [])
        if len(results) != len(calls):
            raise RemoteError("the kernel answered a different number of calls")
        return [
            self._result(r, args, name)
            for r, (args, _) in zip(results, calls, strict=True)
        ]

    def call(self, name: str, args: tuple, kwargs: dict):
        return self.call_many(name, [(args, kwargs)])[0]

    def value(self, name: str):
        """A notebook variable, by value (a module of the learner's: its proxy)."""
        reply = self.request({"op": "get", "name": name})
        if "missing" in reply:
            raise NameError(f"name {name!r} is not defined")
        return _Decoder(self, ()).__call__(reply.get("value"))

    def _reply(self, outputs) -> dict:
        for output in outputs:
            if output.get("output_type") == "error":
                if self.hidden:
                    raise RemoteError("the call failed in the kernel")
                what = safe.learner_text(
                    f"{output.get('ename')}: {output.get('evalue')}", 500
                )
                raise RemoteError(f"the call failed in the kernel: {what}")
        for output in outputs:
            text = output.get("data", {}).get(MIME)
            if not isinstance(text, str) or len(text) > MAX_REPLY:
                continue
            try:
                reply = json.loads(text)
            except ValueError:
                continue
            if isinstance(reply, dict) and reply.get("nonce") == self.nonce:
                return reply
        raise RemoteError("the kernel did not answer the call")

    def writes_back(self, name: str) -> bool:
        """Whether ``name``'s changes to the grader's arguments are copied back."""
        return not self.hidden or name in CHANGES_ARGUMENTS

    def note_change(self, name: str, index: int, what: str) -> None:
        self.changed.append(
            f"{name} changed its argument #{index + 1}: {what} (not written back)"
        )

    def _result(self, result: dict, args: tuple, name: str = ""):
        decode = _Decoder(self, args)
        if "raised" in result:
            raise learner_error(result, self.hidden)
        back = self.writes_back(name)
        for index, value in result.get("mutated", []):
            index = int(index)
            if back or isinstance(args[index], RemoteModule):
                self._copy_back(args[index], decode(value))
            else:
                self.note_change(name, index, "its values, in place")
        for index, state in result.get("states", []):
            index = int(index)
            target = args[index]
            if back or isinstance(target, RemoteModule):
                load_state(target, state, decode)
                continue
            changed = self._module_changes(target, state, decode)
            if changed:
                self.note_change(name, index, f"the layer's {changed}")
            self._load_grads(target, state, decode)
        return decode(result.get("value"))

    @staticmethod
    def _module_changes(module, state: dict, decode) -> str | None:
        """The first parameter or buffer of the grader's ``module`` whose value
        the kernel's ``state`` changes, or None (gradients are not counted)."""
        params = dict(module.named_parameters(recurse=True))
        buffers = dict(module.named_buffers(recurse=True))
        for key, value in state.items():
            kind, name = key.split(":", 1)
            current = params.get(name) if kind == "p" else buffers.get(name)
            if current is None:
                continue
            new = decode(value[0] if kind == "p" else value)
            try:
                if _differs(current, new):
                    return name
            except (TypeError, ValueError, RuntimeError):
                return name
        return None

    @staticmethod
    def _load_grads(module, state: dict, decode) -> None:
        """Only the kernel's gradients into the grader's ``module`` (an exercise
        that computes gradients, lesson 01's, leaves them; they are no value a
        hidden test's reference is computed from)."""
        params = dict(module.named_parameters(recurse=True))
        for key, value in state.items():
            kind, name = key.split(":", 1)
            if kind != "p" or name not in params:
                continue
            grad = value[1]
            try:
                params[name].grad = (
                    None if grad is None else _plain(decode(grad)).clone()
                )
            except (TypeError, ValueError, RuntimeError):
                params[name].grad = None

    @staticmethod
    def _copy_back(target, value):
        try:
            import torch

            if isinstance(target, np.ndarray) and isinstance(value, np.ndarray):
                np.copyto(target, value.reshape(target.shape).astype(target.dtype))
            elif isinstance(target, torch.Tensor):
                with torch.no_grad():
                    target.copy_(torch.as_tensor(value).reshape(target.shape))
        except (ValueError, TypeError, RuntimeError):
            pass  # a changed shape: the check's own snapshot still sees a change


class RemoteFunction:
    """A learner's function whose calls run in the kernel (see the module doc)."""

    def __init__(self, session: Session, name: str):
        self._session, self.__name__ = session, name
        self.__qualname__ = name

    def __call__(self, *args, **kwargs):
        reducer = _with_ranks(self, args, kwargs)
        if reducer is not None:  # lesson 08: one rank of a call on every rank
            return _meet(self, reducer, args, kwargs)
        return self._session.call(self.__name__, args, kwargs)

    def many(self, calls: list[tuple[tuple, dict]]) -> list:
        """Several calls in one round trip (numerical gradients make hundreds)."""
        return self._session.call_many(self.__name__, calls)

    @property
    def __signature__(self) -> inspect.Signature:
        """The learner's parameters (checks compare their order and defaults), rebuilt
        from the kernel's plain data: inspect validates every name and kind, and
        anything it refuses is a ValueError, as for a callable with no signature."""
        try:
            reply = self._session.request({"op": "signature", "name": self.__name__})
            decode, empty = _Decoder(self._session, ()), inspect.Parameter.empty
            return inspect.Signature(
                [
                    inspect.Parameter(n, kind, default=decode(d) if has else empty)
                    for n, kind, has, d in reply["params"]
                ]
            )
        except Exception as exc:  # None, a forged list, no kernel: none to read
            raise ValueError(f"no signature for {self.__name__}: {exc!r}") from None

    def __repr__(self) -> str:
        return f"<the learner's {self.__name__}>"

    def __deepcopy__(self, memo):
        return self

    def ranks_call(self, calls: list, timeout: float):
        """One call per simulated rank, all at once in the kernel.

        ``calls`` holds each rank's (args, kwargs), with ``ALL_REDUCE`` where
        its ``all_reduce`` goes.  The ranks run as threads there (an all-reduce
        cannot travel as data); every all-reduce's inputs and outputs come back
        and are added up here: a log that does not add up fails the test.
        Returns (per-rank replies: values or exceptions, the log).
        """
        session = self._session
        reply = session.request(
            {
                "op": "ranks",
                "name": self.__name__,
                "per_rank": [
                    (session._outgoing(tuple(a)), session._outgoing(dict(k)))
                    for a, k in calls
                ],
                "timeout": float(timeout),
            }
        )
        if "missing" in reply:  # the name asked for, not the kernel's words
            raise NameError(f"name {self.__name__!r} is not defined")
        raw = reply.get("results", [])
        if len(raw) != len(calls):
            raise RemoteError("the kernel answered for a different number of ranks")
        outcomes = []
        for result, (args, _) in zip(raw, calls, strict=True):
            try:
                outcomes.append(
                    (session._result(result, tuple(args), self.__name__), None)
                )
            except Exception as exc:  # that rank's error, raised in its thread
                outcomes.append((None, exc))
        decode = _Decoder(session, ())
        log = [[(decode(i), decode(o)) for i, o in rank] for rank in reply["log"]]
        _check_log(log)
        return outcomes, log


ALL_REDUCE = {"__bnc__": "all_reduce"}  # where a rank's all_reduce goes
_MEETINGS: dict = {}
_MEETINGS_LOCK = threading.Lock()


class _Meeting:
    """The ranks' calls of one learner function, gathered into one request."""

    def __init__(self, world: int, timeout: float):
        self.calls: list = [None] * world
        self.arrived = threading.Barrier(world, timeout=timeout)
        self.done = threading.Barrier(world, timeout=timeout + 60)
        self.outcomes: list = []
        self.error: BaseException | None = None


def _is_rank_all_reduce(value) -> bool:
    return callable(value) and hasattr(value, "ranks") and hasattr(value, "rank")


def _with_ranks(fn: RemoteFunction, args: tuple, kwargs: dict):
    """The all_reduce of a ``helpers.distributed.SimulatedRanks`` among the args,
    or None: the call is then one rank's share of a call on every rank."""
    for value in (*args, *kwargs.values()):
        if _is_rank_all_reduce(value):
            return value
    return None


def _meet(fn: RemoteFunction, reducer, args: tuple, kwargs: dict):
    """This rank's part of one call on every rank (each rank is a thread here)."""
    ranks, rank = reducer.ranks, int(reducer.rank)
    key = (id(ranks), fn.__name__)
    with _MEETINGS_LOCK:
        meeting = _MEETINGS.get(key)
        if meeting is None:
            meeting = _MEETINGS[key] = _Meeting(ranks.world_size, ranks.timeout)
    meeting.calls[rank] = (
        [ALL_REDUCE if _is_rank_all_reduce(a) else a for a in args],
        {k: ALL_REDUCE if _is_rank_all_reduce(v) else v for k, v in kwargs.items()},
    )
    getattr(ranks, "_pass_turn", lambda r: None)(rank)  # the ranks take turns: yield
    try:
        first = meeting.arrived.wait() == 0
    finally:
        with _MEETINGS_LOCK:
            if _MEETINGS.get(key) is meeting:
                del _MEETINGS[key]
    if first:
        try:
            meeting.outcomes, log = fn.ranks_call(meeting.calls, ranks.timeout)
            sent = log[0] if log else []
            ranks.calls += len(sent)
            ranks.elements += sum(int(i.numel()) for i, _ in sent)
        except BaseException as exc:  # noqa: BLE001 - every rank raises it
            meeting.error = exc
    meeting.done.wait()
    if meeting.error is not None:
        raise meeting.error
    value, error = meeting.outcomes[rank]
    if error is not None:
        raise error
    return value


def _check_log(log: list) -> None:
    """Every all-reduce returned the sum of what every rank sent, or RemoteError."""
    if len({len(rank) for rank in log}) > 1:
        raise RemoteError("the ranks made different numbers of all-reduce calls")
    for step in range(len(log[0]) if log else 0):
        sent = [rank[step][0] for rank in log]
        if not all(isinstance(t, torch.Tensor) for t in sent):
            raise RemoteError("an all-reduce log entry is not a tensor")
        total = torch.stack(sent).sum(0)
        for rank in log:
            if not torch.equal(rank[step][1], total.to(rank[step][0].dtype)):
                raise RemoteError(
                    f"all-reduce call {step + 1} returned something other than the "
                    "sum over the ranks (the kernel's log does not add up)"
                )


# --------------------------------------------------------------------------
# learner-defined modules: a proxy here, the object in the kernel
# --------------------------------------------------------------------------


def _flatten(value, found):
    """The tensors of a (nested) output, in order; a template to rebuild it."""
    import torch

    if isinstance(value, torch.Tensor):
        found.append(value)
        return ("t", len(found) - 1)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, [_flatten(v, found) for v in value])
    if isinstance(value, dict):
        return ("dict", {k: _flatten(v, found) for k, v in value.items()})
    return ("v", value)


def _rebuild(template, tensors):
    kind, item = template
    if kind == "t":
        return tensors[item]
    if kind in ("tuple", "list"):
        items = [_rebuild(t, tensors) for t in item]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: _rebuild(t, tensors) for k, t in item.items()}
    return item


class _Box:
    """What one differentiable remote forward needs between forward and backward."""

    def __init__(self, module, args, kwargs, flags, params):
        self.module, self.args, self.kwargs = module, args, kwargs
        self.flags, self.params = flags, params  # params: [(name, Parameter)]
        self.graph = None
        self.template = None

    def run(self):
        value, self.graph = self.module._bnc_forward(
            self.args, self.kwargs, self.flags, grad=True
        )
        found: list = []
        self.template = _flatten(value, found)
        return found

    def backward(self, grads):
        session, key = self.module._bnc_session, self.module._bnc_root._bnc_key
        reply = session.request(
            {
                "op": "backward",
                "id": key,
                "graph": self.graph,
                "grads": [None if g is None else g.detach() for g in grads],
            }
        )
        if "raised" in reply:
            raise learner_error(reply, session.hidden)
        decode = _Decoder(session, ())
        inputs = [decode(g) for g in reply.get("inputs", [])]
        by_name = {str(n): decode(g) for n, g in reply.get("params", [])}
        wanted = [t for t, f in zip(self.args, self.flags, strict=True) if f]
        return (
            [_like(g, t) for g, t in zip(inputs, wanted, strict=False)],
            [_like(by_name.get(name), p) for name, p in self.params],
        )


def _like(grad, tensor):
    """A gradient from the kernel in the dtype and shape autograd expects here."""
    if grad is None or grad.shape != tensor.shape:
        return None
    return grad.to(tensor.dtype)


class RemoteForward(torch.autograd.Function):
    """A learner's module called in the kernel, differentiable here."""

    @staticmethod
    def forward(ctx, box, *tensors):
        ctx.box = box
        outputs = box.run()
        ctx.n_inputs = sum(1 for f in box.flags if f)
        floating = [o for o in outputs if not o.is_floating_point()]
        if floating:
            ctx.mark_non_differentiable(*floating)
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grads):
        inputs, params = ctx.box.backward(grads)
        inputs = (inputs + [None] * ctx.n_inputs)[: ctx.n_inputs]
        return (None, *inputs, *params)


_LOCAL = frozenset({"training"})


class RemoteModule(torch.nn.Module):
    """A learner's ``torch.nn.Module`` that lives in the kernel, seen from here.

    It mirrors the object's parameters, buffers and modes as real tensors of
    this process (so a check reads them, changes them in place, hands them to
    an optimiser, takes ``state_dict()`` ...), and sends every operation that
    runs the learner's code to the kernel, with the state it holds: calling it
    (differentiable: the gradients are asked for when the check runs
    ``backward``), its other attributes and methods, ``train``/``eval``,
    ``double``/``float``/``to``, ``copy.deepcopy``.  After each operation the
    mirror takes the state the kernel reports.  The check judges what comes
    back here; nothing of it runs in the kernel.
    """

    def __init__(self, session, key, type_name, state, path="", root=None):
        super().__init__()
        object.__setattr__(self, "_bnc_session", session)
        object.__setattr__(self, "_bnc_key", key)
        object.__setattr__(self, "_bnc_type", type_name)
        object.__setattr__(self, "_bnc_path", path)
        object.__setattr__(self, "_bnc_root", root if root is not None else self)
        if root is None:
            self._bnc_sync(state)

    # -- the mirror -------------------------------------------------------------

    def _bnc_sync(self, state: dict) -> None:
        """Take the kernel's parameters, buffers and modes (in place where it can)."""
        import torch

        decode = _Decoder(self._bnc_session, ())
        shells = {"": self}
        for path, training in sorted(state.get("modules", []), key=lambda m: m[0]):
            if path and path not in shells:
                parent, _, name = path.rpartition(".")
                holder = shells.get(parent, self)
                child = holder._modules.get(name)
                if not isinstance(child, RemoteModule):
                    child = RemoteModule(
                        self._bnc_session, self._bnc_key, "", {}, path, self
                    )
                    holder._modules[name] = child
                shells[path] = child
            if path in shells:
                object.__setattr__(shells[path], "training", bool(training))
        seen = {p: (set(), set()) for p in shells}
        with torch.no_grad():
            for path, name, value, requires_grad in state.get("params", []):
                shell = shells.get(path)
                if shell is None:
                    continue
                seen[path][0].add(name)
                new = None if value is None else decode(value)
                old = shell._parameters.get(name)
                if new is None:
                    shell._parameters[name] = None
                elif isinstance(old, torch.nn.Parameter) and old.shape == new.shape:
                    if old.dtype == new.dtype:
                        old.copy_(new)
                    else:  # .double() keeps the Parameter objects, as torch's does
                        old.data = new.detach().clone()
                    old.requires_grad_(bool(requires_grad))
                else:
                    shell._parameters[name] = torch.nn.Parameter(
                        new.detach().clone(), requires_grad=bool(requires_grad)
                    )
            for path, name, value, persistent in state.get("buffers", []):
                shell = shells.get(path)
                if shell is None:
                    continue
                seen[path][1].add(name)
                new = None if value is None else decode(value)
                old = shell._buffers.get(name)
                if (
                    new is not None
                    and isinstance(old, torch.Tensor)
                    and old.shape == new.shape
                    and old.dtype == new.dtype
                    and old.requires_grad == new.requires_grad
                ):
                    old.copy_(new)
                else:
                    shell._buffers[name] = new
                if persistent:
                    shell._non_persistent_buffers_set.discard(name)
                else:
                    shell._non_persistent_buffers_set.add(name)
        for path, (params, buffers) in seen.items():
            shell = shells[path]
            for name in set(shell._parameters) - params:
                del shell._parameters[name]
            for name in set(shell._buffers) - buffers:
                del shell._buffers[name]

    def _bnc_state(self) -> dict:
        """What this side holds, for the kernel to load before an operation."""
        root = self._bnc_root
        state = {"params": [], "buffers": [], "modules": []}
        for path, shell in root.named_modules(remove_duplicate=False):
            state["modules"].append([path, bool(shell.training)])
            for name, p in shell._parameters.items():
                state["params"].append(
                    [
                        path,
                        name,
                        None if p is None else p.detach().clone(),
                        None if p is None else bool(p.requires_grad),
                    ]
                )
            for name, b in shell._buffers.items():
                state["buffers"].append(
                    [path, name, None if b is None else b.detach().clone(), True]
                )
        return state

    def _bnc_ref(self) -> dict:
        return {
            "__bnc__": "rref",
            "id": self._bnc_key,
            "path": self._bnc_path,
            "rstate": self._bnc_state(),
        }

    def _bnc_op(self, op: str, **fields) -> dict:
        """One operation on the kept object; the mirror updated from the reply."""
        root = self._bnc_root
        reply = self._bnc_session.request(
            {
                "op": op,
                "id": self._bnc_key,
                "path": self._bnc_path,
                "state": root._bnc_state(),
                **fields,
            }
        )
        if "state" in reply:
            root._bnc_sync(reply["state"])
        if "raised" in reply:
            raise learner_error(reply, self._bnc_session.hidden)
        return reply

    def _bnc_value(self, reply: dict):
        return _Decoder(self._bnc_session, (self,))(reply.get("value"))

    def _bnc_forward(self, args, kwargs, flags, grad):
        session = self._bnc_session
        fields = {
            "args": session._outgoing(
                tuple(a.detach() if _is_tensor(a) else a for a in args)
            ),
            "kwargs": session._outgoing(dict(kwargs)),
            "requires_grad": list(flags),
            "grad": grad,
        }
        if grad:
            session.graphs = getattr(session, "graphs", 0) + 1
            fields["graph"] = session.graphs
        reply = self._bnc_op("forward", **fields)
        for index, value in reply.get("mutated", []):
            if session.hidden:  # the grader's input: a hidden test's reference
                session.note_change("the module", int(index), "its values, in place")
                continue
            Session._copy_back(args[int(index)], _Decoder(session, ())(value))
        return self._bnc_value(reply), reply.get("graph")

    # -- what a check does with a module ------------------------------------

    def forward(self, *args, **kwargs):
        import torch

        flags = [_is_tensor(a) and a.requires_grad for a in args]
        params = [
            (name, p)
            for name, p in self._bnc_root.named_parameters()
            if p.requires_grad
        ]
        if not torch.is_grad_enabled() or not (any(flags) or params):
            return self._bnc_forward(args, kwargs, flags, grad=False)[0]
        box = _Box(self, args, kwargs, flags, params)
        tensors = [a for a, f in zip(args, flags, strict=True) if f]
        outputs = RemoteForward.apply(box, *tensors, *[p for _, p in params])
        if not isinstance(outputs, tuple):
            outputs = (outputs,)
        return _rebuild(box.template, list(outputs))

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)  # parameters, buffers, children
        except AttributeError:
            if name.startswith(("__", "_bnc")) or "_bnc_session" not in self.__dict__:
                raise
        reply = self._bnc_op("getattr", name=name)
        value = reply.get("value")
        if isinstance(value, dict) and value.get("__bnc__") == "method":
            return _RemoteMethod(self, name)
        return self._bnc_value(reply)

    def __setattr__(self, name: str, value) -> None:
        import torch

        local = (
            name in _LOCAL
            or name.startswith("_")
            or "_bnc_session" not in self.__dict__
            or isinstance(value, (torch.nn.Parameter, torch.nn.Module))
            or name in self._parameters
            or name in self._buffers
            or name in self._modules
        )
        if local:
            super().__setattr__(name, value)
            return
        self._bnc_op("setattr", name=name, value=self._bnc_session._outgoing(value))

    def _bnc_method(self, name, *args, **kwargs):
        session = self._bnc_session
        reply = self._bnc_op(
            "method",
            name=name,
            args=session._outgoing(tuple(args)),
            kwargs=session._outgoing(dict(kwargs)),
        )
        return self._bnc_value(reply)

    def train(self, mode: bool = True):
        self._bnc_method("train", mode)
        return self

    def double(self):
        return self._bnc_method("double")

    def float(self):
        return self._bnc_method("float")

    def half(self):
        return self._bnc_method("half")

    def bfloat16(self):
        return self._bnc_method("bfloat16")

    def to(self, *args, **kwargs):
        return self._bnc_method("to", *args, **kwargs)

    def cpu(self):
        return self._bnc_method("cpu")

    def type(self, dst_type):
        return self._bnc_method("type", dst_type)

    def __deepcopy__(self, memo):
        return self._bnc_value(self._bnc_op("deepcopy"))

    def __repr__(self) -> str:
        try:
            text = self._bnc_method("__repr__")
        except Exception:  # noqa: BLE001 - a repr must not fail
            text = None
        if isinstance(text, str) and not self._bnc_session.hidden:
            return safe.learner_text(text, 2000)  # one line: it forges none
        return f"<{self._bnc_type} in the kernel>"


def _is_tensor(value) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


class _RemoteMethod:
    """A learner's method (``module.reset_running_stats``), run in the kernel."""

    def __init__(self, module: RemoteModule, name: str):
        self._module, self.__name__ = module, name

    def __call__(self, *args, **kwargs):
        return self._module._bnc_method(self.__name__, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<the learner's method {self.__name__}>"
