"""Evaluation never changes the model (lessons 03, 04 measure through it)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from helpers import evaluation  # noqa: E402


def _net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(5, 8),
        torch.nn.BatchNorm1d(8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 3),
    )
    with torch.no_grad():  # running statistics far from any batch's
        net[1].running_mean.fill_(3.0)
        net[1].running_var.fill_(0.2)
    return net.eval()


def _data():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(40, 5, generator=gen), torch.randint(3, (40,), generator=gen)


def test_the_check_sees_a_training_mode_pass_change_the_buffers():
    """What the old lesson 04 did: a no_grad pass in training mode."""
    net, (x, _) = _net(), _data()
    before = evaluation.state(net)
    with torch.no_grad():
        net.train()(x[:8])
        net.eval()
    assert "1.running_mean" in evaluation.changes(net, before)
    assert "1.num_batches_tracked" in evaluation.changes(net, before)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_accuracy_and_outputs_change_no_buffer_and_no_mode(mode):
    net, (x, y) = _net(), _data()
    for training in (False, True):
        net.train(training)
        before = evaluation.state(net)
        batches = None if mode == "eval" else torch.arange(40).split(8)
        evaluation.accuracy(net, x, y, batches)
        evaluation.outputs(net, x, batches)
        assert evaluation.changes(net, before) == []


def test_training_mode_accuracy_uses_batch_statistics_of_each_batch():
    net, (x, y) = _net(), _data()
    order = torch.randperm(40, generator=torch.Generator().manual_seed(2))
    batches = order.split(8)
    probe = _net().train()
    with torch.no_grad():
        expected = torch.cat([probe(x[b]).argmax(1) == y[b] for b in batches])
    got = evaluation.accuracy(net, x, y, batches)
    assert got == pytest.approx(expected.float().mean().item())
    # and differs from eval mode here, since the running statistics are far off
    with torch.no_grad():
        eval_hits = (net.eval()(x).argmax(1) == y).float().mean().item()
    assert evaluation.accuracy(net, x, y) == pytest.approx(eval_hits)
    assert not torch.equal(
        evaluation.outputs(net, x, [slice(0, 40)]), evaluation.outputs(net, x)
    )
