"""Experiment results: cached between runs, labelled with how they were made.

``cached(name, params, compute)`` runs ``compute()`` once and keeps its result
(a JSON-able dict) in the cache folder, keyed by the experiment's name, the
mode and a hash of ``params``; the next call with the same parameters loads
it, so a notebook's plots re-render without retraining.  Every file records
the mode, device, library versions and date that produced it.

``reference(name)`` loads results shipped in ``data/reference/`` (made in full
mode by ``tools/make_reference.py``), to show beside a fast-mode run whose
budget is too small to show an effect.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path

from . import config, contract


def provenance() -> dict:
    """Mode, device, versions and date: what produced a result."""
    import numpy

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is always installed here
        torch_version = "not installed"
    device = config.device() if torch_version != "not installed" else "cpu"
    if device == "cuda":
        import torch

        device = f"cuda ({torch.cuda.get_device_name(0)})"
    return {
        "mode": config.mode(),
        "device": device,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch_version,
        "cpu_cores": os.cpu_count(),
        "cpu_bf16": config.cpu_bf16(),
        "date": datetime.date.today().isoformat(),
    }


def _key(params: dict) -> str:
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def results_dir() -> Path:
    return config.cache_dir() / "results"


def write_json(path: Path, data: dict) -> None:
    """Write atomically: a crash never leaves half a file behind."""
    contract.write_json_atomic(path, data)


def cached(name: str, params: dict, compute: Callable[[], dict], refresh=False) -> dict:
    """The result of ``compute()``, from the cache when the same run was made before."""
    path = results_dir() / f"{name}-{config.mode()}-{_key(params)}.json"
    if path.is_file() and not refresh:
        try:
            stored = json.loads(path.read_text())
            made = stored["provenance"]
            print(
                f"[runs] loaded {name} from {path} (made in {made['mode']} mode on "
                f"{made['device']}, {made['date']}); pass refresh=True to rerun"
            )
            return stored["results"]
        except (OSError, ValueError, KeyError) as exc:
            print(f"[runs] ignoring an unreadable cache file {path} ({exc})")
    results = compute()
    _write_record(path, name, params, results)
    return results


def _write_record(path: Path, name: str, params: dict, results: dict) -> None:
    record = {"name": name, "params": params, "provenance": provenance()}
    write_json(path, {**record, "results": results})


def save(name: str, results: dict, params: dict | None = None) -> Path:
    """Keep an experiment's combined results (e.g. of many cached runs) with provenance.

    ``tools/make_reference.py --only NAME`` ships such a file as reference
    results.
    """
    params = params or {}
    path = results_dir() / f"{name}-{config.mode()}-{_key(params)}.json"
    _write_record(path, name, params, results)
    return path


def records(mode: str | None = None) -> list[dict]:
    """Every record in the cache (``cached`` and ``save``), optionally of one mode.

    Each is the stored dict: ``name``, ``params``, ``provenance``, ``results``.
    ``tools/make_reference.py`` ships them; nothing else needs the layout.
    """
    found = []
    for path in sorted(results_dir().glob("*.json")):
        try:
            stored = json.loads(path.read_text())
            made = stored["provenance"]["mode"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a half-written or foreign file is not a record
        if mode is None or made == mode:
            found.append(stored)
    return found


def reference_path(name: str) -> Path:
    return config.data_dir() / "reference" / f"{name}.json"


def reference(name: str) -> dict | None:
    """Shipped full-mode results of ``name`` (None if absent), with a label."""
    path = reference_path(name)
    if not path.is_file():
        print(f"[runs] no reference results for {name} ({path} is missing)")
        return None
    try:
        stored = json.loads(path.read_text())
        made = stored["provenance"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"[runs] {path} is unreadable ({exc}): restore it with `git checkout`")
        return None
    stored["label"] = (
        f"reference run: {made['mode']} mode on {made['device']}, torch "
        f"{made['torch']}, {made['date']}"
    )
    return stored
