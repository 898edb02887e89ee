"""Data-parallel processes on one machine, for lesson 08 (``torch.distributed``).

Two ways to run code "on several devices":

* :class:`SimulatedRanks` runs one function per rank in threads of this
  process, with an ``all_reduce`` that sums a tensor over the ranks (a barrier
  and a shared list).  It needs no sockets and no processes, so the checks and
  the grader use it: an exercise written against ``all_reduce(t) -> sum over
  ranks`` behaves exactly as under ``torch.distributed.all_reduce``.
* :func:`launch` starts real worker processes (``torch.multiprocessing``,
  start method ``spawn``, so it works from a notebook on Linux and macOS), joins
  them into a ``gloo`` process group on a free loopback port, runs an
  importable function in each and returns the ranks' results.  A failed or
  hung worker never hangs the notebook: every wait has a time limit, the other
  workers are stopped, and the error names the rank and its traceback.

Spawned workers cannot unpickle a function defined in a notebook (it lives in
the notebook's ``__main__``), so :func:`run_learner_function` sends such a
function as its source text (``inspect.getsource``) and the worker defines it
again; this is why lesson 08's exercises are functions of tensors and an
``all_reduce`` callable, with no other global state.
"""

from __future__ import annotations

import inspect
import os
import queue
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable

DEFAULT_TIMEOUT = 120.0  # seconds for a whole launch, start-up included


class DistributedError(RuntimeError):
    """A worker failed, hung, or the processes could not start."""


def available() -> tuple[bool, str]:
    """(can real processes be started here?, why not)."""
    try:
        import torch.distributed as dist
    except ImportError as exc:  # a torch built without it
        return False, f"torch.distributed cannot be imported ({exc})"
    if not dist.is_available():
        return False, "this torch build has no torch.distributed"
    if not dist.is_gloo_available():
        return False, "this torch build has no gloo backend"
    try:
        free_port()
    except OSError as exc:
        return False, f"no loopback socket can be opened here ({exc})"
    return True, ""


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# simulated ranks: threads with a summing all-reduce
# --------------------------------------------------------------------------


class SimulatedRanks:
    """``world_size`` ranks as threads of this process.

    ``run(fn, per_rank_args)`` calls ``fn(*args, all_reduce)`` once per rank,
    in threads; ``all_reduce(t)`` returns a new tensor, the sum of ``t`` over
    the ranks (each rank must call it the same number of times, as with
    ``torch.distributed``).  ``calls`` counts the all-reduces of rank 0 and
    ``elements`` the numbers it sent.

    The ranks take turns, in rank order, between two collectives: rank 0 runs
    until its all-reduce (or its end), then rank 1, and so on.  Real ranks run
    at once, but a learner's code that shares state across ranks (a module-level
    cache, a global counter) then gives the same answer, and the same message,
    at every run instead of one that depends on how the threads interleave.
    """

    def __init__(self, world_size: int, timeout: float = 30.0):
        if world_size < 1:
            raise ValueError("world_size must be at least 1")
        self.world_size = world_size
        self.timeout = timeout
        self._turn, self._next = threading.Condition(), 0  # whose turn it is
        self._barrier = threading.Barrier(world_size, self._first, timeout=timeout)
        self._slots: list = [None] * world_size
        self.calls = 0
        self.elements = 0

    def _first(self):  # the barrier's action: after a collective, rank 0 first
        with self._turn:
            self._next = 0

    def _wait_turn(self, rank: int):
        with self._turn:
            if not self._turn.wait_for(lambda: self._next == rank, self.timeout):
                raise threading.BrokenBarrierError  # an earlier rank never yielded

    def _pass_turn(self, rank: int):
        with self._turn:
            self._next = rank + 1
            self._turn.notify_all()

    def _all_reduce_for(self, rank: int) -> Callable:
        import torch

        def all_reduce(tensor):
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(
                    f"all_reduce takes a torch.Tensor, got {type(tensor).__name__}"
                )
            self._slots[rank] = tensor.detach().clone()
            self._pass_turn(rank)
            self._barrier.wait()  # every rank has put its tensor
            shapes = {tuple(t.shape) for t in self._slots}
            total = None
            if len(shapes) == 1:
                total = torch.stack(self._slots).sum(0)
            if rank == 0:
                self.calls += 1
                self.elements += tensor.numel()
            self._barrier.wait()  # every rank has read the slots
            self._wait_turn(rank)  # back to the learner's code, in rank order
            if total is None:
                raise ValueError(
                    f"all_reduce got tensors of different shapes {sorted(shapes)}: "
                    "every rank must send the same shape (e.g. one value per "
                    "channel), as torch.distributed requires"
                )
            return total.to(tensor.dtype)

        # Which ranks and rank it belongs to: the grader's proxy of a learner's
        # function (tools/grading/remote.py), called with it, runs the ranks'
        # calls together where the learner's function lives.
        all_reduce.ranks, all_reduce.rank = self, rank
        return all_reduce

    def run(self, fn: Callable, per_rank_args: list) -> list:
        """``[fn(*per_rank_args[r], all_reduce) for each rank r]``, run together.

        An exception in any rank is raised here (the first by rank), after the
        others were released; a rank that waits for the others longer than
        ``timeout`` raises ``threading.BrokenBarrierError``.
        """
        if len(per_rank_args) != self.world_size:
            raise ValueError(f"need one argument tuple per rank ({self.world_size})")
        results: list = [None] * self.world_size
        errors: list = [None] * self.world_size

        def work(rank):
            try:
                self._wait_turn(rank)
                results[rank] = fn(*per_rank_args[rank], self._all_reduce_for(rank))
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                errors[rank] = exc
                self._barrier.abort()  # the other ranks stop waiting for this one
            finally:
                self._pass_turn(rank)  # done (or failed): the next rank's turn

        threads = [
            threading.Thread(target=work, args=(r,), daemon=True)
            for r in range(self.world_size)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.timeout + 5)
        self._barrier.reset()
        self._first()  # the next run starts with rank 0 again
        raised = [e for e in errors if e is not None]
        real = [e for e in raised if not isinstance(e, threading.BrokenBarrierError)]
        if real or raised:  # the error of a rank, not the others' broken waits
            raise (real or raised)[0]
        return results


# --------------------------------------------------------------------------
# real processes: spawn + gloo on the loopback interface
# --------------------------------------------------------------------------


def _portable(value):
    """Tensors as NumPy arrays: a tensor sent through torch's queue lives in
    shared memory that disappears with the worker that made it."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_portable(v) for v in value)
    return value


def _worker(rank, world_size, port, target, args, kwargs, results, timeout):
    """Entry point of every spawned process (importable, as spawn requires)."""
    import datetime

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)  # the ranks share this machine's cores
    # loopback only: "lo" on Linux, "lo0" on macOS
    os.environ.setdefault(
        "GLOO_SOCKET_IFNAME", "lo0" if sys.platform == "darwin" else "lo"
    )
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout),
        )
        # every rank finishes connecting before any may exit: a rank whose
        # target returns at once could otherwise close its sockets while a
        # slower rank is still in gloo's handshake ("Connection closed by peer")
        dist.barrier()
        try:
            value = target(rank, world_size, *args, **kwargs)
        finally:
            dist.destroy_process_group()
        results.put((rank, "ok", _portable(value)))
    except BaseException:  # noqa: BLE001 - sent to the parent as text
        results.put((rank, "error", traceback.format_exc(limit=8)))


def launch(
    target: Callable,
    world_size: int = 2,
    args: tuple = (),
    timeout=DEFAULT_TIMEOUT,
    kwargs: dict | None = None,
) -> list:
    """Run ``target(rank, world_size, *args, **kwargs)`` in ``world_size`` gloo
    processes.

    ``target`` must be importable (a function of a module, not of a notebook)
    and its result picklable.  Returns the results by rank.  Raises
    :class:`DistributedError` when a worker fails (with its traceback), when
    the processes do not finish within ``timeout`` seconds (they are stopped),
    or when real processes cannot run here (see :func:`available`).
    """
    ok, why = available()
    if not ok:
        raise DistributedError(f"cannot start worker processes: {why}")
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    results = context.Queue()
    port = free_port()
    procs = [
        context.Process(
            target=_worker,
            args=(rank, world_size, port, target, args, kwargs or {}, results, timeout),
            daemon=True,
        )
        for rank in range(world_size)
    ]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    outcome: dict = {}
    try:
        while len(outcome) < world_size:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DistributedError(
                    f"the {world_size} workers did not finish within {timeout:.0f} s "
                    f"(ranks done: {sorted(outcome) or 'none'}); they were stopped"
                )
            try:
                rank, status, value = results.get(timeout=min(left, 1.0))
            except queue.Empty:
                dead = [r for r, p in enumerate(procs) if p.exitcode not in (None, 0)]
                dead = [r for r in dead if r not in outcome]
                if dead:
                    raise DistributedError(
                        f"worker {dead[0]} exited with code {procs[dead[0]].exitcode} "
                        "before it reported: it could not start (from a script, "
                        "call launch under `if __name__ == '__main__':`), or it "
                        "was killed (out of memory?)"
                    ) from None
                continue
            if status == "error":
                raise DistributedError(f"worker {rank} failed:\n{value}")
            outcome[rank] = value
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    return [outcome[r] for r in range(world_size)]


# --------------------------------------------------------------------------
# a learner's function, sent to the workers as source text
# --------------------------------------------------------------------------


def source_of(fn: Callable) -> str:
    """The source of a function defined at the top level of a notebook cell."""
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError) as exc:
        raise DistributedError(
            f"cannot read the source of {getattr(fn, '__name__', fn)!r} ({exc}): "
            "define it with `def` at the top level of a cell and run that cell"
        ) from None


def rebuild(source: str, name: str) -> Callable:
    """Define ``name`` from ``source`` in a fresh namespace (numpy, torch, nn, F)."""
    import numpy as np
    import torch

    space = {
        "np": np,
        "torch": torch,
        "nn": torch.nn,
        "F": torch.nn.functional,
        "math": __import__("math"),
    }
    exec(compile(source, f"<{name}>", "exec"), space)
    return space[name]


def torch_all_reduce(tensor):
    """The sum of ``tensor`` over the process group, as a new tensor."""
    import torch.distributed as dist

    total = tensor.detach().clone()
    dist.all_reduce(total)
    return total


# --------------------------------------------------------------------------
# lesson 08's workers (importable, so that spawn can start them)
# --------------------------------------------------------------------------


def small_net(channels=8, seed=0):
    """Linear(6, C) -> BatchNorm1d(C) -> ReLU -> Linear(C, 3), float64."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, channels),
        nn.BatchNorm1d(channels),
        nn.ReLU(),
        nn.Linear(channels, 3),
    ).double()


def _parameters(cls):
    return inspect.signature(cls).parameters


def toy_batches(steps, batch, seed=0):
    """``steps`` batches (x, y) of ``batch`` examples: 6 features, 3 classes."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, batch, 6, generator=gen, dtype=torch.float64) * 2 + 1
    return x, torch.randint(3, (steps, batch), generator=gen)


def ddp_train(rank, world_size, steps=3, batch=16, lr=0.1, broadcast_buffers=False):
    """Data-parallel SGD of :func:`small_net` with plain BN: each rank takes its
    slice of every batch.  Returns the final parameters and this rank's
    running statistics."""
    import torch
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    # torch >= 2.12 renames broadcast_buffers to forward_sync_buffers (Colab's
    # 2.11 has only the old name); both sync the buffers at every forward
    sync = (
        "forward_sync_buffers"
        if "forward_sync_buffers" in _parameters(DDP)
        else "broadcast_buffers"
    )
    model = DDP(small_net(), **{sync: broadcast_buffers})
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    xs, ys = toy_batches(steps, batch)
    per = batch // world_size
    for x, y in zip(xs, ys, strict=True):
        mine = slice(rank * per, (rank + 1) * per)
        loss = F.cross_entropy(model(x[mine]), y[mine])
        optimizer.zero_grad()
        loss.backward()  # DDP averages the gradients over the ranks
        optimizer.step()
    bn = model.module[1]
    return {
        "parameters": [p.detach().clone() for p in model.module.parameters()],
        "running_mean": bn.running_mean.clone(),
        "running_var": bn.running_var.clone(),
    }


def ddp_train_twice(rank, world_size, **kwargs):
    """:func:`ddp_train` without and with the buffer broadcast, in the same
    processes (one start-up: spawning costs seconds)."""
    return [
        ddp_train(rank, world_size, broadcast_buffers=broadcast, **kwargs)
        for broadcast in (False, True)
    ]


def ghost_train(world_size, steps=3, batch=16, lr=0.1):
    """One process, the same SGD as :func:`ddp_train`: batch norm on each
    ``batch // world_size`` slice separately (ghost batches), loss averaged."""
    import torch
    import torch.nn.functional as F

    model = small_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    xs, ys = toy_batches(steps, batch)
    per = batch // world_size
    for x, y in zip(xs, ys, strict=True):
        losses = [
            F.cross_entropy(
                model(x[r * per : (r + 1) * per]), y[r * per : (r + 1) * per]
            )
            for r in range(world_size)
        ]
        optimizer.zero_grad()
        torch.stack(losses).mean().backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def sync_bn_worker(rank, world_size, sources, x, gamma, beta, dout):
    """The learner's synchronised BN (sent as source) on this rank's slice, with
    the real all-reduce; also what torch's own SyncBatchNorm says on a CPU."""
    import torch

    forward = rebuild(sources["sync_batchnorm_forward"], "sync_batchnorm_forward")
    backward = rebuild(sources["sync_batchnorm_backward"], "sync_batchnorm_backward")
    mine = x.chunk(world_size)[rank]
    out, cache = forward(mine, gamma, beta, torch_all_reduce)
    grads = backward(dout.chunk(world_size)[rank], cache, torch_all_reduce)
    sync = torch.nn.SyncBatchNorm(x.shape[1]).double()
    try:
        sync(mine)
        torch_says = "ran"
    except ValueError as exc:
        torch_says = str(exc)
    return {"out": out, "grads": grads, "torch_sync_bn": torch_says}


def all_reduce_seconds(rank, world_size, sizes, repeat=20):
    """Median seconds of one ``all_reduce`` of float32 tensors of each size."""
    import statistics

    import torch
    import torch.distributed as dist

    times = {}
    for size in sizes:
        t = torch.ones(size)
        dist.all_reduce(t)  # warm-up: connections, buffers
        laps = []
        for _ in range(repeat):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(t)
            laps.append(time.perf_counter() - start)
        times[size] = statistics.median(laps)
    return times


# --------------------------------------------------------------------------
# the capstone: a learner's synchronised BN, as an autograd Function, trains
# --------------------------------------------------------------------------


def function_bn_net(function, channels=8, seed=0):
    """:func:`small_net` with its BN layer's training-mode forward replaced by
    ``function(x, gamma, beta, running_mean, running_var)`` (a differentiable
    batch norm that updates the running statistics in place); eval mode is
    PyTorch's, with the running statistics."""
    from torch import nn

    class FunctionBatchNorm1d(nn.BatchNorm1d):
        def forward(self, x):
            if not self.training:
                return super().forward(x)
            self.num_batches_tracked += 1
            return function(
                x, self.weight, self.bias, self.running_mean, self.running_var
            )

    net = small_net(channels, seed)
    bn = FunctionBatchNorm1d(channels).double()
    bn.load_state_dict(net[1].state_dict())
    net[1] = bn
    return net


def sync_bn_train(rank, world_size, sources, steps=3, batch=16, lr=0.1, timed_steps=0):
    """The capstone, in each gloo process: :func:`small_net` trained with DDP
    and the learner's synchronised BN (``sources["sync_batch_norm"]`` builds
    the autograd Function from the learner's forward and backward, sent as
    source); returns the parameters and running statistics after ``steps``
    SGD steps on this rank's half of each batch, and, with ``timed_steps``,
    the median seconds of one training step with the learner's synchronised BN
    and with plain (per-rank) BN, and of the time spent inside the learner's
    all-reduces in a step."""
    import statistics

    import torch
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    space = {}
    for name, text in sources.items():
        space[name] = rebuild(text, name)
    for fn in space.values():  # the functions call each other by name
        fn.__globals__.update(space)
    waited = [0.0]  # seconds spent inside the learner's all-reduces

    def timed_all_reduce(tensor):
        start = time.perf_counter()
        try:
            return torch_all_reduce(tensor)
        finally:
            waited[0] += time.perf_counter() - start

    function = space["sync_batch_norm"](timed_all_reduce)
    per = batch // world_size
    mine = slice(rank * per, (rank + 1) * per)

    # the buffers are the same on every rank: no broadcast (see ddp_train)
    sync = (
        "forward_sync_buffers"
        if "forward_sync_buffers" in _parameters(DDP)
        else "broadcast_buffers"
    )

    def train(model, n_steps, data_seed=0):
        ddp = DDP(model, **{sync: False})
        optimizer = torch.optim.SGD(ddp.parameters(), lr=lr)
        xs, ys = toy_batches(n_steps, batch, seed=data_seed)
        laps, inside = [], []
        for x, y in zip(xs, ys, strict=True):
            start, waited[0] = time.perf_counter(), 0.0
            loss = F.cross_entropy(ddp(x[mine]), y[mine])
            optimizer.zero_grad()
            loss.backward()  # DDP averages the gradients over the ranks
            optimizer.step()
            laps.append(time.perf_counter() - start)
            inside.append(waited[0])
        return model, (laps, inside)

    model, _ = train(function_bn_net(function), steps)
    bn = model[1]
    result = {
        "parameters": [p.detach().clone() for p in model.parameters()],
        "running_mean": bn.running_mean.clone(),
        "running_var": bn.running_var.clone(),
    }
    if timed_steps:
        _, (synced, inside) = train(function_bn_net(function), timed_steps, 1)
        _, (plain, _) = train(small_net(), timed_steps, data_seed=1)
        result["seconds"] = {
            "synchronised": statistics.median(synced[2:]),
            "plain": statistics.median(plain[2:]),
        }
        result["all-reduce seconds"] = statistics.median(inside[2:])
    return result


def whole_batch_train(steps=3, batch=16, lr=0.1):
    """One process, the same SGD as :func:`sync_bn_train` with PyTorch's
    ``nn.BatchNorm1d`` on the whole batch: what synchronised BN must equal."""
    import torch
    import torch.nn.functional as F

    model = small_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    xs, ys = toy_batches(steps, batch)
    for x, y in zip(xs, ys, strict=True):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    bn = model[1]
    return {
        "parameters": [p.detach().clone() for p in model.parameters()],
        "running_mean": bn.running_mean.clone(),
        "running_var": bn.running_var.clone(),
    }


def sync_bn_capstone(rank, world_size, sources, x, gamma, beta, dout, **train):
    """:func:`sync_bn_worker` and then :func:`sync_bn_train` in the same
    processes (one start-up: spawning costs seconds), results merged."""
    return {
        **sync_bn_worker(rank, world_size, sources, x, gamma, beta, dout),
        **sync_bn_train(rank, world_size, sources, **train),
    }
