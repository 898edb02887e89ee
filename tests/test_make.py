"""The two README commands as a learner's machine runs them: PyTorch's build, root.

The install itself is what `make test` has just done (CI starts from a clean
checkout); these tests check the command lines `make` builds for other
machines, and that `make lab` really serves JupyterLab when run as root.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from .conftest import ROOT

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _dry_run(tmp_path, path_dirs: list, **variables) -> str:
    """What `make` would run to install a fresh environment (nothing is run)."""
    env = dict(os.environ, PATH=os.pathsep.join(str(p) for p in path_dirs))
    args = [f"{k}={v}" for k, v in variables.items()]
    result = subprocess.run(
        [
            "make",
            "-n",
            "-B",
            f"VENV={tmp_path / 'venv'}",
            *args,
            f"{tmp_path / 'venv'}/.installed-lab",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _torch_line(output: str) -> str:
    """The torch step: the index the probe is asked about, then pip (one command)."""
    lines = output.splitlines()
    (i,) = [i for i, ln in enumerate(lines) if "'torch==" in ln]
    assert lines[i - 1].startswith("index=$(") and "torch_index.py" in lines[i - 1]
    return lines[i - 1] + " " + lines[i]


def _asked(line: str) -> str:
    """The index handed to tools/torch_index.py ('' for the default index)."""
    return re.search(r"torch_index\.py --timeout \S+ '([^']*)'", line).group(1)


def _system_path(tmp_path, with_nvidia: bool) -> list:
    """/usr/bin and /bin for uname, sh and grep, and optionally an nvidia-smi."""
    fake = tmp_path / ("gpu" if with_nvidia else "nogpu")
    fake.mkdir()
    if with_nvidia:
        smi = fake / "nvidia-smi"
        smi.write_text("#!/bin/sh\nexit 0\n")
        smi.chmod(0o755)
    return [fake, "/usr/bin", "/bin"]


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="the rule is Linux's")
def test_linux_without_a_gpu_takes_pytorchs_cpu_build(tmp_path):
    line = _torch_line(_dry_run(tmp_path, _system_path(tmp_path, False)))
    assert _asked(line) == CPU_INDEX, line
    assert '${index:+--extra-index-url "$index"}' in line  # if it answers
    assert "--no-deps" in line  # only torch looks at that index


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="the rule is Linux's")
def test_linux_with_an_nvidia_gpu_keeps_pypis_cuda_build(tmp_path):
    line = _torch_line(_dry_run(tmp_path, _system_path(tmp_path, True)))
    assert _asked(line) == "", line


def test_the_torch_index_can_be_overridden(tmp_path):
    path = _system_path(tmp_path, False)
    assert _asked(_torch_line(_dry_run(tmp_path, path, TORCH_INDEX=""))) == ""
    line = _torch_line(_dry_run(tmp_path, path, TORCH_INDEX="https://example.org/x"))
    assert _asked(line) == "https://example.org/x"
    assert "'torch==2.13.0'" in line  # the pin comes from requirements.txt


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    not (ROOT / ".venv" / ".installed").exists(), reason="make has not installed .venv"
)
def test_make_lab_serves_jupyterlab_for_this_user_root_included(tmp_path):
    """As root (CI, containers) JupyterLab refuses to start without --allow-root."""
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )
    args = (
        f"--no-browser --ip=127.0.0.1 --port={port} "
        f"--IdentityProvider.token={token} --ServerApp.port_retries=0"
    )
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(
        ["make", "lab", f"LAB_ARGS={args}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/lab?token={token}"
    status, deadline = None, time.monotonic() + 180  # a loaded machine is slow
    try:
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    status = response.status
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        log.close()
    text = (tmp_path / "lab.log").read_text()
    assert status == 200, f"make lab did not serve JupyterLab:\n{text[-3000:]}"
    if os.geteuid() == 0:
        assert "--allow-root" in text  # make echoes the command it ran
