"""helpers.config is the one place that reads the environment."""

from __future__ import annotations

import pytest

import helpers
from helpers import config


def test_fast_mode_and_budgets(monkeypatch):
    monkeypatch.setenv("BNCOURSE_FAST", "1")
    assert config.fast() and config.mode() == "fast"
    assert config.epochs(full=20, fast=2) == 2
    assert config.budget(full=(1, 2), fast=(3,)) == (3,)
    monkeypatch.setenv("BNCOURSE_FAST", "0")
    assert not config.fast() and config.epochs(full=20, fast=2) == 20
    monkeypatch.delenv("BNCOURSE_FAST")
    assert config.mode() == "full"


def test_device(monkeypatch):
    monkeypatch.setenv("BNCOURSE_DEVICE", "cpu")
    assert config.device() == "cpu"
    monkeypatch.setenv("BNCOURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="cpu, cuda or auto"):
        config.device()
    monkeypatch.setenv("BNCOURSE_DEVICE", "cuda")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="Change runtime type"):
            config.device()


def test_download_follows_the_mode(monkeypatch):
    monkeypatch.delenv("BNCOURSE_DOWNLOAD", raising=False)
    monkeypatch.setenv("BNCOURSE_FAST", "1")
    assert not config.download_allowed()
    monkeypatch.setenv("BNCOURSE_FAST", "0")
    assert config.download_allowed()
    monkeypatch.setenv("BNCOURSE_DOWNLOAD", "0")
    assert not config.download_allowed()


def test_missing_data_folder_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "_data_candidates", lambda: [tmp_path / "data"])
    with pytest.raises(FileNotFoundError, match="BNCOURSE_DATA"):
        config.data_dir()


def test_setup_prints_what_it_set(capsys, monkeypatch):
    import numpy as np
    import torch

    monkeypatch.setenv("BNCOURSE_FAST", "1")
    session = helpers.setup(seed=3)
    out = capsys.readouterr().out
    assert "seed 3" in out and "torch" in out and "mode fast" in out
    assert session.seed == 3 and session.mode == "fast"
    a = (np.random.rand(), torch.rand(1).item())
    helpers.setup(seed=3)
    assert (np.random.rand(), torch.rand(1).item()) == a


def test_importing_helpers_changes_nothing():
    import subprocess
    import sys

    code = (
        "import sys, matplotlib; before = dict(matplotlib.rcParams); "
        "import helpers, helpers.checks, helpers.data, helpers.plotting; "
        "assert dict(matplotlib.rcParams) == before, 'rcParams changed'; "
        "assert 'torch' not in sys.modules, 'torch imported at import time'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_setup_gives_torch_one_thread_unless_asked(capsys):
    import torch

    import helpers

    before = torch.get_num_threads()
    try:
        assert helpers.setup(seed=0).threads == 1 == torch.get_num_threads()
        assert "(1 thread)" in capsys.readouterr().out
        torch.set_num_threads(2)
        assert helpers.setup(seed=0, threads=None).threads == 2
    finally:
        torch.set_num_threads(before)
