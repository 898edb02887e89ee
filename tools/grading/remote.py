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

Why not otter's or nbgrader's way: both run the tests inside the learner's
kernel, where the learner's code can replace them (the attack this module
exists to stop), and otter's isolation is Docker only.
"""

from __future__ import annotations

import base64
import builtins
import json
import pickle
import secrets
from pathlib import Path

import numpy as np

from .kernel_side import MIME, load_state

MAX_REPLY = 64 * 1024 * 1024  # bytes of JSON accepted from the kernel
MAX_ITEMS = 10_000_000  # array elements per reply
MAX_DEPTH = 24


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

    # -- handles --------------------------------------------------------------

    def opaque(self, key: str, type_name: str) -> Opaque:
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

        if isinstance(value, Opaque):
            return {"__bnc__": "ref", "id": value._key}
        if isinstance(value, torch.nn.Module):
            known = self.sent.get(id(value))
            if known is not None and known[1] is value:
                return {"__bnc__": "ref", "id": known[0], "state": self._state(value)}
            key = f"g{len(self.sent)}"
            self.sent[id(value)] = (key, value)
            return {"__bnc__": "new", "id": key, "pickle": pickle.dumps(value)}
        if isinstance(value, tuple):
            return tuple(self._outgoing(v) for v in value)
        if isinstance(value, list):
            return [self._outgoing(v) for v in value]
        if isinstance(value, dict):
            return {k: self._outgoing(v) for k, v in value.items()}
        return value

    # -- calls ------------------------------------------------------------------

    def call_many(self, name: str, calls: list[tuple[tuple, dict]]) -> list:
        """Call the learner's ``name`` once per (args, kwargs); results in order."""
        request = {
            "name": name,
            "calls": [
                (self._outgoing(tuple(args)), self._outgoing(dict(kwargs)))
                for args, kwargs in calls
            ],
        }
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
        self.calls += len(calls)
        outputs = self.execute(code)
        reply = self._reply(outputs)
        if "missing" in reply:
            raise NameError(f"name {reply['missing']!r} is not defined")
        results = reply.get("results", [])
        if len(results) != len(calls):
            raise RemoteError("the kernel answered a different number of calls")
        return [
            self._result(r, args) for r, (args, _) in zip(results, calls, strict=True)
        ]

    def call(self, name: str, args: tuple, kwargs: dict):
        return self.call_many(name, [(args, kwargs)])[0]

    def _reply(self, outputs) -> dict:
        for output in outputs:
            if output.get("output_type") == "error":
                raise RemoteError(
                    f"the call failed in the kernel: {output.get('ename')}: "
                    f"{output.get('evalue')}"
                )
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

    def _result(self, result: dict, args: tuple):
        decode = _Decoder(self, args)
        if "raised" in result:
            raise _error_class(str(result["raised"]))(str(result.get("message", "")))
        for index, value in result.get("mutated", []):
            self._copy_back(args[int(index)], decode(value))
        for index, state in result.get("states", []):
            import torch  # noqa: F401  (load_state finds it in sys.modules)

            load_state(args[int(index)], state, decode)
        return decode(result.get("value"))

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
        return self._session.call(self.__name__, args, kwargs)

    def many(self, calls: list[tuple[tuple, dict]]) -> list:
        """Several calls in one round trip (numerical gradients make hundreds)."""
        return self._session.call_many(self.__name__, calls)

    def __repr__(self) -> str:
        return f"<the learner's {self.__name__}>"

    def __deepcopy__(self, memo):
        return self
