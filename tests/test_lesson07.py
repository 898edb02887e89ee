"""Lesson 07's tools: the batch-norm variants, the nets, the loop and the
scale-invariance facts the lesson states (helpers/diagnostics.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from helpers import diagnostics


def test_weights_feeding_batch_norm_are_scale_invariant():
    facts = diagnostics.scale_invariance(scale=10.0)
    assert facts["output change"] < 1e-3  # only eps tells the scales apart
    assert facts["gradient along the weights"] < 1e-3  # orthogonal to W
    assert math.isclose(facts["gradient norm ratio"], 10.0, rel_tol=1e-3)  # 1/||W||


def test_ghost_batch_norm_normalises_each_ghost_batch():
    x = torch.randn(12, 4, dtype=torch.float64) * 3 + 2
    ghost = diagnostics.GhostBatchNorm1d(4, ghost=4).double().train()
    want = torch.cat([F.batch_norm(c, None, None, training=True) for c in x.split(4)])
    assert torch.allclose(ghost(x), want, atol=1e-12)
    plain = nn.BatchNorm1d(4).double()
    plain.load_state_dict(ghost.state_dict())
    assert torch.allclose(ghost.eval()(x), plain.eval()(x))


def test_centre_only_and_scale_only_do_half_of_batch_norm():
    x = torch.randn(64, 3) * 4 + 5
    centred = diagnostics.CenterOnly(3).train()(x)
    assert torch.allclose(centred.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(centred.std(0), x.std(0), rtol=1e-5)  # not scaled
    scaled = diagnostics.ScaleOnly(3).train()(x)
    assert torch.allclose(scaled.var(0, correction=0), torch.ones(3), rtol=1e-3)
    assert (scaled.mean(0) > 0.5).all()  # not centred


def test_the_weight_scale_sweep_draws_the_stated_scale():
    model = diagnostics.mlp("none", depth=2, init_scale=0.3)
    weights = torch.cat([m.weight.flatten() for m in model if isinstance(m, nn.Linear)])
    assert math.isclose(weights.std().item(), 0.3, rel_tol=0.05)
    assert all(m.bias.abs().max() == 0 for m in model if isinstance(m, nn.Linear))


def test_the_loop_stops_on_divergence_and_probes_on_schedule():
    x, y = torch.randn(64, 784) * 10, torch.randint(10, (64,))
    model = diagnostics.mlp("none", depth=2, init_scale=3.0)
    history = diagnostics.sgd(model, x, y, 50, lr=100.0, batch=16)
    assert history["diverged"] and len(history["loss"]) < 50
    calm = diagnostics.sgd(
        diagnostics.mlp("bn", depth=1), x, y, 10, every=5, probe=lambda m, s: s
    )
    assert calm["probes"] == [0, 5] and not calm["diverged"]


def test_every_named_cnn_norm_builds_and_runs():
    x = torch.randn(8, 784)
    for name in diagnostics.CNN_NORMS:
        assert diagnostics.cnn(name)(x).shape == (8, 10)
