"""The kernel's side of tools/grading/remote.py, sent to the learner's kernel as text.

It runs inside the submission's kernel, so nothing here is trusted by the
grader: it only calls the learner's function and sends back the output, as
JSON (arrays as raw bytes), never as a pickle.  Kept free of imports from the
course so that it works whatever the submission did to them.
"""
# ruff: noqa: F821  (get_ipython exists in the kernel)

import base64 as _b64
import json as _json
import math as _math
import pickle as _pickle
import sys as _sys

import numpy as _np

MIME = "application/vnd.bncourse.call+json"

STORE = {}  # handle -> object the grader refers to
MAX_DEPTH = 24


def _array(a):
    a = _np.array(a, order="C")  # ascontiguousarray would make 0-d arrays 1-d
    if a.dtype.kind not in "biufc?" or a.dtype.hasobject:
        return {
            "__bnc__": "nd-other",
            "dtype": str(a.dtype),
            "shape": list(a.shape),
            "items": [str(v) for v in a.ravel()[:100000]],
        }
    return {
        "__bnc__": "nd",
        "dtype": a.dtype.str,
        "shape": list(a.shape),
        "b64": _b64.b64encode(a.tobytes()).decode(),
    }


def _float(v):
    v = float(v)
    return v if _math.isfinite(v) else {"__bnc__": "f", "v": repr(v)}


def _torch():
    return _sys.modules.get("torch")


def _module_state(m):
    out = {}
    for name, p in m.named_parameters(recurse=True):
        out["p:" + name] = [
            _array(p.detach().cpu().numpy()),
            None if p.grad is None else _array(p.grad.detach().cpu().numpy()),
        ]
    for name, b in m.named_buffers(recurse=True):
        out["b:" + name] = _array(b.detach().cpu().numpy())
    return out


def load_state(m, state, decode=lambda v: v):
    """Copy a ``_module_state`` into module ``m`` (arrays passed through ``decode``).

    The grader's remote.py uses it too, for the states the kernel sends back.
    """
    torch = _torch()
    params = dict(m.named_parameters(recurse=True))
    buffers = dict(m.named_buffers(recurse=True))
    with torch.no_grad():
        for key, value in state.items():
            kind, name = key.split(":", 1)
            if kind == "p" and name in params:
                values, grad = value
                params[name].copy_(torch.from_numpy(decode(values)))
                params[name].grad = (
                    None if grad is None else torch.from_numpy(decode(grad)).clone()
                )
            elif kind == "b" and name in buffers:
                buffers[name].copy_(torch.from_numpy(decode(value)))


def _plain_module(m):
    """A torch.nn layer (torch's own class, no hooks): sent by its attributes."""
    cls = type(m)
    if not cls.__module__.startswith("torch.nn.modules."):
        return False
    hooks = [v for k, v in vars(m).items() if "hook" in k and v]
    return not hooks and all(_plain_module(c) for c in m.children())


def enc(v, args, depth=0):
    torch = _torch()
    if depth > MAX_DEPTH:
        return {"__bnc__": "opaque", "id": _keep(v), "type": type(v).__name__}
    for index, arg in enumerate(args):
        if v is arg and not isinstance(v, (int, float, str, bool, type(None))):
            return {"__bnc__": "arg", "index": index}
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, _np.generic):
        return {
            "__bnc__": "npscalar",
            "dtype": v.dtype.str,
            "v": enc(v.item(), args, depth + 1),
        }
    if isinstance(v, _np.ndarray):
        return _array(v)
    if torch is not None and isinstance(v, torch.Tensor):
        t = v.detach().cpu()
        return {
            "__bnc__": "tensor",
            "array": _array(t.numpy()),
            "requires_grad": bool(v.requires_grad),
            "parameter": isinstance(v, torch.nn.Parameter),
        }
    if isinstance(v, (tuple, list)):
        return {
            "__bnc__": type(v).__name__ if type(v) in (tuple, list) else "list",
            "items": [enc(x, args, depth + 1) for x in v],
        }
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return {
            "__bnc__": "dict",
            "items": [[k, enc(x, args, depth + 1)] for k, x in v.items()],
        }
    if torch is not None and isinstance(v, torch.nn.Module) and _plain_module(v):
        internal = {
            "_parameters",
            "_buffers",
            "_modules",
            "_non_persistent_buffers_set",
        }
        attrs = {
            k: x
            for k, x in vars(v).items()
            if k not in internal and "hook" not in k and "state_dict" not in k
        }
        return {
            "__bnc__": "module",
            "module": type(v).__module__,
            "class": type(v).__qualname__,
            "attrs": enc(attrs, args, depth + 1),
            "params": [[k, enc(p, args, depth + 1)] for k, p in v._parameters.items()],
            "buffers": [[k, enc(b, args, depth + 1)] for k, b in v._buffers.items()],
            "non_persistent": sorted(v._non_persistent_buffers_set),
            "children": [[k, enc(c, args, depth + 1)] for k, c in v._modules.items()],
            "training": bool(v.training),
        }
    return {"__bnc__": "opaque", "id": _keep(v), "type": type(v).__name__}


def _keep(v):
    for key, kept in STORE.items():
        if kept is v:
            return key
    key = f"k{len(STORE)}"
    STORE[key] = v
    return key


def dec(v):
    if isinstance(v, dict) and v.get("__bnc__") == "ref":
        obj = STORE[v["id"]]
        if v.get("state") is not None:
            load_state(obj, v["state"])
        return obj
    if isinstance(v, dict) and v.get("__bnc__") == "new":
        obj = _pickle.loads(v["pickle"])
        STORE[v["id"]] = obj
        return obj
    if isinstance(v, tuple):
        return tuple(dec(x) for x in v)
    if isinstance(v, list):
        return [dec(x) for x in v]
    if isinstance(v, dict):
        return {k: dec(x) for k, x in v.items()}
    return v


def _snapshot(a):
    torch = _torch()
    if isinstance(a, _np.ndarray):
        return a.copy()
    if torch is not None and isinstance(a, torch.Tensor):
        return a.detach().clone()
    return None


def _changed(before, after):
    torch = _torch()
    if isinstance(before, _np.ndarray):
        return not _np.array_equal(before, after, equal_nan=True)
    return not torch.equal(before, after.detach())


def _one(fn, args, kwargs):
    snaps = [_snapshot(a) for a in args]
    try:
        value = fn(*args, **kwargs)
    except KeyboardInterrupt:  # the grader's time limit: let the cell fail
        raise
    except BaseException as exc:  # SystemExit included: reported, not obeyed
        return {"raised": type(exc).__name__, "message": str(exc)[:2000]}
    reply = {"value": enc(value, args)}
    mutated = []
    for index, (snap, arg) in enumerate(zip(snaps, args, strict=True)):
        if snap is not None and _changed(snap, arg):
            mutated.append([index, enc(arg, ())])
    if mutated:
        reply["mutated"] = mutated
    torch = _torch()
    states = []
    for index, arg in enumerate(args):
        if torch is not None and isinstance(arg, torch.nn.Module):
            states.append([index, _module_state(arg)])
    if states:
        reply["states"] = states
    return reply


def serve(request_b64, nonce):
    from IPython.display import display

    req = _pickle.loads(_b64.b64decode(request_b64))
    fn = get_ipython().user_ns.get(req["name"])
    if not callable(fn):
        reply = {"missing": req["name"]}
    else:
        reply = {"results": [_one(fn, list(dec(a)), dec(k)) for a, k in req["calls"]]}
    reply["nonce"] = nonce
    display({MIME: _json.dumps(reply)}, raw=True)
