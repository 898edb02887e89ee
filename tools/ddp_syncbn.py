"""Data-parallel training with batch norm, for ``torchrun`` (lesson 08).

    torchrun --standalone --nproc_per_node 2 tools/ddp_syncbn.py --steps 20

Runs unchanged on CPUs and on GPUs.  On CPUs the processes use the ``gloo``
backend and plain batch norm, since ``nn.SyncBatchNorm`` synchronises CUDA
(and XPU, HPU) tensors only: every rank normalises its own slice.  DDP's
default buffer broadcast copies rank 0's running statistics to every rank
before each forward pass, so at the end the ranks' statistics differ only by
the last step's update (lesson 08, section 1).  The ranks draw their data
from different distributions (rank r's inputs scaled by 1 + r, shifted by r).
On GPUs (one per process, ``LOCAL_RANK``) they use ``nccl`` and every BN
layer is converted with ``nn.SyncBatchNorm.convert_sync_batchnorm``: the
ranks' statistics agree.
Each rank trains on its own random batches of ``--batch`` images (3 x 16 x 16)
and prints its first BN layer's running mean; rank 0 also prints the largest
difference between ranks.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP


def make_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8, help="examples per rank")
    args = parser.parse_args(argv)
    gpu = torch.cuda.is_available()
    dist.init_process_group("nccl" if gpu else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{int(os.environ['LOCAL_RANK'])}" if gpu else "cpu")
    if gpu:
        torch.cuda.set_device(device)
    torch.manual_seed(0)  # the same initial weights on every rank
    net = make_net()
    if gpu:
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    model = DDP(net.to(device), device_ids=[device.index] if gpu else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(1 + rank)  # each rank its own data
    for _ in range(args.steps):
        x = torch.randn(args.batch, 3, 16, 16, generator=gen) * (1 + rank) + rank
        y = torch.randint(10, (args.batch,), generator=gen)
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    bn = next(
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    )
    mean = bn.running_mean.detach().clone()
    print(
        f"rank {rank}/{world} ({'nccl, SyncBatchNorm' if gpu else 'gloo, BatchNorm'}): "
        f"running_mean[:4] {[round(v, 4) for v in mean[:4].tolist()]}",
        flush=True,
    )
    gathered = [torch.zeros_like(mean) for _ in range(world)]
    dist.all_gather(gathered, mean)
    if rank == 0:
        spread = max(float((g - gathered[0]).abs().max()) for g in gathered)
        print(f"largest difference of running_mean between ranks: {spread:.3g}")
    dist.barrier()  # every rank done before the group goes
    del model, optimizer
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    code = main()
    # Leave without the interpreter's teardown: on a busy machine a rank now
    # and then aborted there, after its work and destroy_process_group() were
    # done ("terminate called without an active exception", SIGABRT, 1 run in
    # 6 to 14 beside two busy processes, torch 2.13 gloo), which torchrun
    # reports as a failed job.  Gloo's threads outliving the interpreter is a
    # known PyTorch problem (pytorch/pytorch#179291); nothing is left to clean.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
