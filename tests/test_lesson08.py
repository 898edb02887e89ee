"""Lesson 08: real gloo processes (2 ranks), the launcher's failure modes, the
thread-simulated ranks the checks use, and the torchrun script."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import distributed

from .conftest import ROOT
from .mutants import lesson08 as wrong

pytestmark = pytest.mark.skipif(
    not distributed.available()[0],
    reason=f"no worker processes: {distributed.available()[1]}",
)


def test_data_parallel_plain_bn_is_ghost_bn_and_the_ranks_statistics_drift():
    both = distributed.launch(distributed.ddp_train_twice, world_size=2)
    ranks, synced = [r[0] for r in both], [r[1] for r in both]

    def drift(pair):
        return np.abs(pair[0]["running_mean"] - pair[1]["running_mean"]).max()

    assert 0 < drift(synced) < drift(ranks)  # the broadcast hides all but a step
    ghost = distributed.ghost_train(world_size=2)
    for p, q in zip(ranks[0]["parameters"], ghost, strict=True):
        assert np.abs(p - q.numpy()).max() < 1e-12
    for p, q in zip(ranks[0]["parameters"], ranks[1]["parameters"], strict=True):
        assert np.array_equal(p, q), "DDP keeps the ranks' weights identical"
    assert np.abs(ranks[0]["running_mean"] - ranks[1]["running_mean"]).max() > 1e-3


def _sources():
    """Right implementations written in the test suite, sent as source text."""
    forward = (
        "def sync_batchnorm_forward(x, gamma, beta, all_reduce, eps=1e-5):\n"
        "    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))\n"
        "    mean = all_reduce(x.sum(0)) / count\n"
        "    var = all_reduce(((x - mean) ** 2).sum(0)) / count\n"
        "    rho = 1 / torch.sqrt(var + eps)\n"
        "    x_hat = (x - mean) * rho\n"
        "    return gamma * x_hat + beta, (x_hat, rho, gamma, count)\n"
    )
    backward = (
        "def sync_batchnorm_backward(dout, cache, all_reduce):\n"
        "    x_hat, rho, gamma, count = cache\n"
        "    s = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)]))\n"
        "    s = s / count\n"
        "    dx = gamma * rho * (dout - s[0] - x_hat * s[1])\n"
        "    return dx, (dout * x_hat).sum(0), dout.sum(0)\n"
    )
    return {"sync_batchnorm_forward": forward, "sync_batchnorm_backward": backward}


def test_synchronised_bn_in_two_gloo_processes_equals_one_process_on_the_batch():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(10, 3, generator=gen, dtype=torch.float64) * 4 + 7
    gamma, beta = (
        torch.rand(3, dtype=torch.float64) + 0.5,
        torch.randn(3, dtype=torch.float64),
    )
    dout = torch.randn(10, 3, generator=gen, dtype=torch.float64)
    ranks = distributed.launch(
        distributed.sync_bn_worker, 2, (_sources(), x, gamma, beta, dout)
    )
    xg = x.clone().requires_grad_()
    g, b = gamma.clone().requires_grad_(), beta.clone().requires_grad_()
    out = F.batch_norm(xg, None, None, g, b, training=True)
    out.backward(dout)
    got = np.concatenate([r["out"] for r in ranks])
    assert np.abs(got - out.detach().numpy()).max() < 1e-12
    dx = np.concatenate([r["grads"][0] for r in ranks])
    assert np.abs(dx - xg.grad.numpy()).max() < 1e-12
    assert np.abs(sum(r["grads"][1] for r in ranks) - g.grad.numpy()).max() < 1e-12
    # torch's own SyncBatchNorm refuses CPU tensors: the lesson says so
    assert "expected input tensor to be on GPU" in ranks[0]["torch_sync_bn"]


def fails(rank, world_size):
    if rank == 1:
        raise ArithmeticError("rank 1 gives up")
    return rank


def hangs(rank, world_size):
    time.sleep(600 if rank == 0 else 0)
    return rank


def test_a_failing_worker_is_named_with_its_traceback():
    with pytest.raises(distributed.DistributedError, match="worker 1 failed") as info:
        distributed.launch(fails, 2, timeout=60)
    assert "ArithmeticError: rank 1 gives up" in str(info.value)


def test_a_hung_worker_times_out_and_is_stopped():
    start = time.monotonic()
    with pytest.raises(
        distributed.DistributedError, match="did not finish within 20 s"
    ):
        distributed.launch(hangs, 2, timeout=20)
    assert time.monotonic() - start < 300  # stopped, not waited for (600 s)


def test_simulated_ranks_sum_and_refuse_mismatched_shapes():
    ranks = distributed.SimulatedRanks(3)
    totals = ranks.run(
        lambda v, reduce: reduce(torch.tensor([v])), [(1.0,), (2.0,), (4.0,)]
    )
    assert [float(t) for t in totals] == [7.0, 7.0, 7.0] and ranks.calls == 1
    with pytest.raises(ValueError, match="different shapes"):
        distributed.SimulatedRanks(2).run(
            lambda n, reduce: reduce(torch.zeros(n)), [(2,), (3,)]
        )


def test_simulated_ranks_take_turns_between_collectives():
    """Code that shares state across ranks (a module-level cache) gets one answer,
    and one message, at every run: rank order, not the threads' timing."""
    seen = []

    def body(rank, reduce):
        time.sleep(0.02 * (2 - rank))  # run at once, rank 2 would get there first
        seen.append(rank)
        reduce(torch.ones(1))
        seen.append(rank)

    distributed.SimulatedRanks(3).run(body, [(0,), (1,), (2,)])
    assert seen == [0, 1, 2, 0, 1, 2], seen


def test_a_rank_that_raises_releases_the_others():
    def body(rank, reduce):
        if rank == 0:
            raise KeyError("boom")
        return reduce(torch.ones(1))

    before = threading.active_count()
    with pytest.raises(KeyError):
        distributed.SimulatedRanks(3, timeout=5).run(body, [(0,), (1,), (2,)])
    time.sleep(0.5)
    assert threading.active_count() <= before + 1


def test_the_checks_accept_right_and_name_wrong_implementations():
    from helpers.checks import lesson08

    assert lesson08.sync_batchnorm_forward(wrong._forward, quiet=True)
    assert not lesson08.sync_batchnorm_forward(
        wrong.FORWARD["each rank's own statistics"][0], quiet=True
    )


def test_the_forward_check_holds_running_statistics_to_torch_with_a_rank_of_one():
    """Issue 32: running_mean and running_var as nn.BatchNorm1d on the whole
    batch (unbiased with the global count, momentum), slices of 4, 7 and 1."""
    from helpers.checks import lesson08

    xs = [torch.randn(n, 4, dtype=torch.float64) + 3 for n in (4, 7, 1)]
    mean0, var0 = torch.zeros(4, dtype=torch.float64), torch.ones(4).double()
    ranks = [(x, mean0.clone(), var0.clone()) for x in xs]

    def on_rank(x, rm, rv, reduce):
        return wrong._forward(
            x,
            torch.ones(4).double(),
            torch.zeros(4).double(),
            reduce,
            1e-5,
            rm,
            rv,
            0.3,
        )

    distributed.SimulatedRanks(3).run(on_rank, ranks)
    want = torch.nn.BatchNorm1d(4, momentum=0.3).double()
    want(torch.cat(xs))
    for _, rm, rv in ranks:
        assert torch.allclose(rm, want.running_mean, rtol=1e-13, atol=0)
        assert torch.allclose(rv, want.running_var, rtol=1e-13, atol=0)
    # a forward pass that never touches the running statistics fails the check
    ignores = wrong.FORWARD["running stats rebound, not updated"][0]
    report = lesson08.sync_batchnorm_forward(ignores, quiet=True)
    assert not report
    assert "running_var did not change" in report.lines()


def test_the_merge_weighs_unequal_shares_and_every_bn_type():
    """Issue 32: shards of 50, 200 and 20 examples drawn from different
    distributions; each rank's BatchNorm1d holds its shard's mean and unbiased
    variance (momentum 1); the merge must give what BatchNorm1d computes on the
    concatenated shards."""
    from helpers.checks import lesson08

    gen = torch.Generator().manual_seed(0)
    shards = [
        torch.randn(n, 3, generator=gen, dtype=torch.float64) * (1 + r) + 4 * r
        for r, n in enumerate((50, 200, 20))
    ]
    models = []
    for x in shards:
        bn = torch.nn.BatchNorm1d(3, momentum=1.0).double()
        bn(x)  # running statistics = this shard's mean and unbiased variance
        models.append((torch.nn.Sequential(bn), len(x)))
    distributed.SimulatedRanks(3).run(
        lambda m, n, reduce: wrong.merge(m, reduce, n), models
    )
    union = torch.nn.BatchNorm1d(3, momentum=1.0).double()
    union(torch.cat(shards))
    for model, _ in models:
        got = model[0]
        assert torch.allclose(got.running_mean, union.running_mean, rtol=1e-13, atol=0)
        assert torch.allclose(got.running_var, union.running_var, rtol=1e-13, atol=0)
    assert lesson08.merge_running_stats(
        lambda m, a, c: wrong.merge(m, a, c), quiet=True
    )
    for name in (
        "equal weights (the merge for equal shares)",
        "BatchNorm1d, 2d and 3d only",
        "no term between the ranks",
        "variances taken as biased",
    ):
        report = lesson08.merge_running_stats(wrong.MERGE[name][0], quiet=True)
        assert not report and wrong.MERGE[name][1] in report.lines(), name


LAYER = (
    "def sync_bn_forward(x, gamma, beta, running_mean, running_var, all_reduce,\n"
    "                    eps=1e-5, momentum=0.1):\n"
    "    count = all_reduce(torch.tensor([float(x.shape[0])], dtype=x.dtype))\n"
    "    mean = all_reduce(x.sum(0)) / count\n"
    "    var = all_reduce(((x - mean) ** 2).sum(0)) / count\n"
    "    running_mean.mul_(1 - momentum).add_(momentum * mean)\n"
    "    running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))\n"
    "    invstd = 1 / torch.sqrt(var + eps)\n"
    "    return gamma * (x - mean) * invstd + beta, (x, gamma, mean, invstd, count)\n",
    "def sync_bn_backward(saved, dout, all_reduce):\n"
    "    x, gamma, mean, invstd, count = saved\n"
    "    x_hat = (x - mean) * invstd\n"
    "    s = all_reduce(torch.stack([dout.sum(0), (dout * x_hat).sum(0)])) / count\n"
    "    dx = gamma * invstd * (dout - s[0] - x_hat * s[1])\n"
    "    return dx, (dout * x_hat).sum(0), dout.sum(0), None, None\n",
)


def _given_function() -> str:
    """The lesson's own autograd Function around the learner's two halves."""
    import nbformat

    nb = nbformat.read(
        ROOT / "solutions" / "08_batchnorm_across_devices.ipynb", as_version=4
    )
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("def sync_batch_norm("):
            return cell.source
    raise AssertionError("lesson 08 gives no sync_batch_norm")


def _layer_sources() -> dict:
    sources = {"sync_batch_norm": _given_function()}
    for text in LAYER:
        sources[text.split("(", 1)[0][4:]] = text
    return sources


def test_the_given_function_around_right_halves_is_whole_batch_bn_under_autograd():
    """The lesson's autograd Function calls the two halves the capstone's check
    grades: on 3 thread ranks of 4, 7 and 1 examples, autograd through it gives
    F.batch_norm's output and gradients on the whole batch, and BatchNorm1d's
    running statistics."""
    space = {}
    for name, text in _layer_sources().items():
        space[name] = distributed.rebuild(text, name)
    for fn in space.values():
        fn.__globals__.update(space)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(12, 4, generator=gen, dtype=torch.float64) * 3 + 2
    gamma, beta = torch.rand(4).double() + 0.5, torch.randn(4).double()
    dout = torch.randn(12, 4, generator=gen, dtype=torch.float64)
    mine = [t.clone().requires_grad_() for t in x.split([4, 7, 1])]
    buffers = [(torch.zeros(4).double(), torch.ones(4).double()) for _ in range(3)]

    def on_rank(xr, dr, rm, rv, reduce):
        g, b = (t.clone().requires_grad_() for t in (gamma, beta))
        out = space["sync_batch_norm"](reduce, 1e-5, 0.3)(xr, g, b, rm, rv)
        out.backward(dr)
        return out.detach(), g.grad, b.grad

    per_rank = zip(mine, dout.split([4, 7, 1]), buffers, strict=True)
    ranks = distributed.SimulatedRanks(3).run(
        on_rank, [(m, d, *b) for m, d, b in per_rank]
    )
    xg, g, b = (t.clone().requires_grad_() for t in (x, gamma, beta))
    want = F.batch_norm(xg, None, None, g, b, training=True)
    want.backward(dout)
    assert torch.allclose(torch.cat([r[0] for r in ranks]), want, rtol=0, atol=1e-12)
    assert torch.allclose(torch.cat([m.grad for m in mine]), xg.grad, atol=1e-12)
    assert torch.allclose(sum(r[1] for r in ranks), g.grad, atol=1e-12)
    assert torch.allclose(sum(r[2] for r in ranks), b.grad, atol=1e-12)
    bn = torch.nn.BatchNorm1d(4, momentum=0.3).double()
    bn(x)
    for rm, rv in buffers:
        assert torch.allclose(rm, bn.running_mean, atol=1e-13)
        assert torch.allclose(rv, bn.running_var, atol=1e-13)


def test_capstone_synchronised_bn_trains_in_two_gloo_processes_as_one_process():
    """Issue 32: the lesson's autograd Function around the capstone's two halves,
    under DDP in 2 gloo processes, trains as nn.BatchNorm1d on the whole batch
    (weights and running statistics), and the processes time a step."""
    sources = {**_sources(), **_layer_sources()}
    x = torch.randn(6, 4, dtype=torch.float64) * 3 + 5
    gamma, beta = torch.rand(4).double() + 0.5, torch.randn(4).double()
    ranks = distributed.launch(
        distributed.sync_bn_capstone,
        2,
        (sources, x, gamma, beta, torch.randn(6, 4).double()),
        kwargs={"steps": 4, "timed_steps": 5},
    )
    want = F.batch_norm(x, None, None, gamma, beta, training=True)
    got = np.concatenate([r["out"] for r in ranks])
    assert np.abs(got - want.numpy()).max() < 1e-12
    one = distributed.whole_batch_train(steps=4)
    start = distributed.small_net()
    for rank in ranks:
        moved = 0.0
        for p, q, p0 in zip(
            rank["parameters"], one["parameters"], start.parameters(), strict=True
        ):
            assert np.abs(p - q.numpy()).max() < 1e-12
            moved = max(moved, np.abs(p - p0.detach().numpy()).max())
        assert moved > 1e-3  # it trained
        for key in ("running_mean", "running_var"):
            assert np.abs(rank[key] - one[key].numpy()).max() < 1e-12
        assert set(rank["seconds"]) == {"synchronised", "plain"}
        assert all(s > 0 for s in rank["seconds"].values())


def _launcher_script() -> str:
    """The launch.py that lesson 08 shows in a markdown cell, as written."""
    import nbformat

    nb = nbformat.read(
        ROOT / "solutions" / "08_batchnorm_across_devices.ipynb", as_version=4
    )
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "save it as `launch.py`" in cell.source:
            return cell.source.split("```python\n", 1)[1].split("```", 1)[0]
    raise AssertionError("lesson 08 shows no launch.py")


def test_the_launcher_the_lesson_shows_runs_as_written(tmp_path):
    """Issue 32: init_process_group, rank and world size, all_reduce and
    destroy_process_group, in a script a learner can copy."""
    script = _launcher_script()
    for needed in (
        "dist.init_process_group(",
        "dist.get_rank()",
        "dist.get_world_size()",
        "dist.all_reduce(",
        "dist.destroy_process_group()",
        "mp.spawn(",
    ):
        assert needed in script, needed
    # the lesson's port, swapped for a free one so that runs do not collide
    path = tmp_path / "launch.py"
    path.write_text(script.replace("29500", str(distributed.free_port())))
    done = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rank 0 of 2: 4 examples of N = 9" in done.stdout
    assert "rank 1 of 2: 5 examples of N = 9" in done.stdout


@pytest.mark.slow
def test_the_torchrun_script_runs_on_two_cpu_processes(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    done = subprocess.run(
        [
            *torchrun,
            "--standalone",
            "--nproc_per_node",
            "2",
            str(ROOT / "tools" / "ddp_syncbn.py"),
            "--steps",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rank 0/2 (gloo, BatchNorm)" in done.stdout
    assert "rank 1/2 (gloo, BatchNorm)" in done.stdout
    assert "largest difference of running_mean between ranks" in done.stdout


def test_dgamma_multiplied_by_the_ranks_is_not_called_all_reduced(learner_mode):
    """Unseen round 16's wrong cause: W times this rank's own dgamma has the sum
    over ranks of an all-reduce; only an all-reduce gives every rank the same."""
    from helpers import checks

    from .mutants import lesson08 as m

    def backward(dout, cache, all_reduce):
        dx, dgamma, dbeta = m.sync_backward(dout, cache, all_reduce)
        return dx, 3 * dgamma, 3 * dbeta

    text = checks.sync_batchnorm_backward(m.sync_forward, backward, quiet=True).lines()
    assert "was all-reduced" not in text and "3 = W" in text, text
    reduced = m._bwd(reduce_params=True)
    text = checks.sync_batchnorm_backward(m.sync_forward, reduced, quiet=True).lines()
    assert "counts the shares 3 times" in text
