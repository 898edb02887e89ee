"""Lesson 07's tools: the batch-norm variants, the nets, the loop and the
scale-invariance facts the lesson states (helpers/diagnostics.py)."""

from __future__ import annotations

import copy
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


def test_bn_fed_weights_are_the_weights_right_before_a_batch_norm():
    model = diagnostics.mlp("bn", depth=3)
    chosen = diagnostics.bn_fed_weights(model)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [id(w) for w in chosen] == [id(m.weight) for m in linears[:-1]]
    assert diagnostics.bn_fed_weights(diagnostics.mlp("none")) == []
    after_relu = diagnostics.mlp("bn", norm_after_activation=True)
    assert diagnostics.bn_fed_weights(after_relu) == []  # a ReLU comes between
    assert len(diagnostics.bn_fed_weights(diagnostics.cnn("batch norm"))) == 2
    assert diagnostics.bn_fed_weights(diagnostics.cnn("layer norm")) == []


def _one_step_with_zero_gradients(model, **kwargs):
    """Each parameter's ratio after/before one SGD step whose gradients are 0."""
    with torch.no_grad():
        for p in model.parameters():  # no zeros: every ratio is defined
            p.uniform_(0.5, 1.5)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    opt = diagnostics.optimizer(model, lr=0.1, momentum=0.0, weight_decay=0.5, **kwargs)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return {
        name: (p.detach() / before[name]).mean().item()
        for name, p in model.named_parameters()
    }


def test_weight_decay_goes_only_where_it_is_asked():
    model = diagnostics.mlp("bn", depth=2)
    chosen = {id(w) for w in diagnostics.bn_fed_weights(model)}
    names = {name: id(p) in chosen for name, p in model.named_parameters()}
    ratios = _one_step_with_zero_gradients(
        model, decay_only=diagnostics.bn_fed_weights(model)
    )
    for name, ratio in ratios.items():  # a decay step multiplies by 1 - lr * wd
        assert math.isclose(ratio, 0.95 if names[name] else 1.0, rel_tol=1e-6), name
    everything = _one_step_with_zero_gradients(diagnostics.mlp("bn", depth=2))
    assert all(math.isclose(r, 0.95, rel_tol=1e-6) for r in everything.values())


def test_a_learning_rate_drop_to_zero_stops_the_parameters():
    x, y = torch.randn(64, 784), torch.randint(10, (64,))
    stopped, short = diagnostics.mlp("bn", depth=1), diagnostics.mlp("bn", depth=1)
    diagnostics.sgd(stopped, x, y, 10, batch=16, lr_drop=(5, 0.0))
    diagnostics.sgd(short, x, y, 5, batch=16)
    for a, b in zip(stopped.parameters(), short.parameters(), strict=True):
        assert torch.equal(a, b)
    moving = diagnostics.mlp("bn", depth=1)
    diagnostics.sgd(moving, x, y, 10, batch=16, lr_drop=(5, 0.5))
    assert not torch.equal(moving[0].weight, short[0].weight)


def test_rescaling_the_bn_fed_weights_keeps_the_function_and_the_classifier_not():
    x = torch.randn(128, 784)
    model = diagnostics.mlp("bn", depth=3, init_scale=3.0)
    out = lambda m: copy.deepcopy(m).train()(x).detach()  # batch statistics
    before = out(model)
    diagnostics.rescale_to_he(model, 3.0)
    assert torch.allclose(out(model), before, rtol=1e-4, atol=1e-4 * before.abs().max())
    first = model[0].weight
    assert math.isclose(first.std().item(), (2 / 784) ** 0.5, rel_tol=0.05)
    assert math.isclose(model[-1].weight.std().item(), 3.0, rel_tol=0.1)  # untouched
    diagnostics.rescale_to_he(model, 3.0, bn_fed=False, classifier=True)
    factor = (2 / 100) ** 0.5 / 3.0  # zero bias: the logits scale exactly
    assert torch.allclose(out(model), before * factor, rtol=1e-3, atol=1e-3)


def test_train_only_leaves_just_the_named_part_trainable():
    model = diagnostics.train_only(
        diagnostics.mlp("bn", depth=2, width=30), "gamma, beta"
    )
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["1.weight", "1.bias", "4.weight", "4.bias"]
    frozen = copy.deepcopy(model[0].weight)
    x, y = torch.randn(64, 784), torch.randint(10, (64,))
    diagnostics.sgd(model, x, y, 5, batch=16)
    assert torch.equal(model[0].weight, frozen)
    assert not torch.equal(model[1].weight, torch.ones(30))
    head = diagnostics.train_only(diagnostics.mlp("bn", depth=2), "classifier")
    assert [n for n, p in head.named_parameters() if p.requires_grad] == [
        "6.weight",
        "6.bias",
    ]
