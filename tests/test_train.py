"""Lesson 05's engine (helpers/train.py): edge cases, host syncs, bf16 by CPU."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import config, train  # noqa: E402


class _Tiny:
    """A CIFAR-shaped data set of ``n`` random images."""

    def __init__(self, n, n_test=20, seed=0):
        rng = np.random.default_rng(seed)
        self.x_train = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.y_train = rng.integers(0, 10, n)
        self.x_test = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
        self.y_test = rng.integers(0, 10, n_test)
        self.classes = [str(i) for i in range(10)]
        self.source = "random"


def _net():
    return train.make_vgg(widths=(8, 8), pool_first=True)


def _cfg(**kw):
    return train.TrainConfig(**{"epochs": 2, "batch_size": 16, **kw})


def test_a_data_set_smaller_than_one_batch_trains(monkeypatch):
    """It raised UnboundLocalError ('lr') before: no step ran."""
    data = train.DeviceData(_Tiny(5), device="cpu")
    history = train.train(_net(), data, _cfg(batch_size=256), progress=False)
    assert history["epoch"] == [1, 2] and all(np.isfinite(history["train_loss"]))
    with pytest.raises(ValueError, match="no training images"):
        train.train(_net(), train.DeviceData(_Tiny(0), device="cpu"), _cfg())


def test_no_host_synchronisation_inside_a_training_step(monkeypatch):
    """Reading a tensor on the host (.item(), float(), bool()) waits for the GPU;
    the engine does it once per epoch, never per step."""
    data = train.DeviceData(_Tiny(64), device="cpu")
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: (0.0, 0.0))
    calls = {"n": 0}
    for name in ("item", "tolist", "__float__", "__bool__", "__int__", "cpu"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            calls["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    epochs, steps = 3, 64 // 16
    train.train(_net(), data, _cfg(epochs=epochs), progress=False)
    assert calls["n"] <= epochs, f"{calls['n']} host reads for {epochs * steps} steps"


def test_a_diverging_run_stops_and_says_so():
    data = train.DeviceData(_Tiny(32), device="cpu")
    history = train.train(_net(), data, _cfg(lr=1e6, epochs=5), progress=False)
    assert history["diverged"] and len(history["epoch"]) < 5
    assert history["train_loss"][-1] is None


def test_bf16_by_default_where_the_cpu_has_bf16_units(monkeypatch):
    assert config.cpu_has_bf16("flags : fpu sse avx512f amx_bf16 amx_tile")
    assert config.cpu_has_bf16("flags : fpu avx512_bf16")
    assert not config.cpu_has_bf16("flags : fpu sse avx2 avx512f")
    monkeypatch.setattr(config, "cpu_has_bf16", lambda cpuinfo=None: True)
    monkeypatch.delenv("BNCOURSE_CPU_BF16", raising=False)
    assert config.cpu_bf16()
    monkeypatch.setenv("BNCOURSE_CPU_BF16", "0")
    assert not config.cpu_bf16()
    monkeypatch.setattr(config, "cpu_has_bf16", lambda cpuinfo=None: False)
    monkeypatch.setenv("BNCOURSE_CPU_BF16", "1")
    assert config.cpu_bf16()


def test_bn_after_the_relu_keeps_the_convolution_bias():
    before = train.make_vgg(widths=(8, 8), norm="bn")
    after = train.make_vgg(widths=(8, 8), norm="bn_after")
    assert before[0].bias is None  # redundant before BN
    assert after[0].bias is not None  # not redundant before a ReLU


def test_forward_flops_are_counted_by_hand_rules():
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8 x 32 x 32 outputs, 3 x 3 x 3 each
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=2),  # 4 input channels per group
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )
    expected = 2 * (8 * 32 * 32 * 27) + 2 * (8 * 32 * 32 * 4 * 9) + 2 * 10 * 8
    assert train.forward_flops(model) == expected
    assert model.training  # the mode is restored
    seconds = train.projected_seconds(1e9, 50_000, peak=65e12, utilisation=0.25)
    assert seconds == pytest.approx(3 * 1e9 * 50_000 / (65e12 * 0.25))


def test_warm_up_is_untimed_and_changes_nothing():
    """The warm-up runs on a copy: with or without it, the same run, bit for bit
    (dropout included: it draws from the global generator)."""
    data = train.DeviceData(_Tiny(48), device="cpu")
    results = []
    for steps in (0, 3):
        torch.manual_seed(0)
        model = train.make_vgg(widths=(8, 8), pool_first=True, dropout=0.3)
        history = train.train(model, data, _cfg(), progress=False, warmup_steps=steps)
        results.append((history, [p.detach().clone() for p in model.parameters()]))
    (cold, cold_params), (warm, warm_params) = results
    assert cold["warmup_seconds"] == 0.0 and warm["warmup_seconds"] > 0.0
    assert cold["train_loss"] == warm["train_loss"]
    assert all(torch.equal(a, b) for a, b in zip(cold_params, warm_params, strict=True))
    assert len(warm["cpu_seconds"]) == len(warm["seconds"]) == 2


def test_flip_shear_zoom_is_keras_augmentation_in_its_limits():
    """No zoom and no shear: each image is itself or its mirror (grid_sample at
    pixel centres reproduces the pixels); with zoom the images change."""
    x = torch.randn(16, 3, 32, 32)
    gen = torch.Generator().manual_seed(0)
    out = train.flip_shear_zoom(x, shear_degrees=0.0, zoom=0.0, generator=gen)
    same = (out - x).abs().amax(dim=(1, 2, 3)) < 1e-5
    mirrored = (out - x.flip(3)).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 16
    zoomed = train.flip_shear_zoom(x, zoom=0.2, generator=gen)
    assert zoomed.shape == x.shape and not torch.allclose(zoomed, x, atol=1e-2)


def test_the_step_schedule_divides_by_ten_every_step_epochs():
    data = train.DeviceData(_Tiny(32), device="cpu")
    cfg = _cfg(epochs=5, lr=0.01, schedule="step", step_epochs=2)
    history = train.train(_net(), data, cfg, progress=False)
    assert history["lr"] == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.0001])
    with pytest.raises(ValueError, match="schedule="):
        train.train(_net(), data, _cfg(schedule="cosine"), progress=False)


def test_the_cuda_policy_is_what_a_gpu_needs():
    cuda = train.Policy.for_device("cuda")
    assert cuda.autocast_dtype == torch.float16  # the T4 has no bf16
    assert cuda.grad_scaler and cuda.fused and cuda.cudnn_benchmark and cuda.synchronize
    cpu = train.Policy.for_device("cpu", cpu_bf16=True)
    assert cpu.autocast_dtype == torch.bfloat16
    assert not (cpu.grad_scaler or cpu.fused or cpu.cudnn_benchmark or cpu.synchronize)
    assert train.Policy.for_device("cpu").autocast_dtype is None  # float32
    assert cuda.describe() == "float16 autocast with a gradient scaler"


def test_the_cuda_policy_trains_on_the_cpu(monkeypatch):
    """fp16 autocast, GradScaler, fused SGD, cuDNN's autotuner and the synchronised
    clock, each run here: a typo in a line only a GPU would reach fails in CI."""
    syncs = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: syncs.append(a))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    policy = train.Policy.for_device("cuda").on("cpu")
    data = train.DeviceData(_Tiny(64), device="cpu")
    run = train._Run(_net(), data, _cfg(), policy)
    assert run.optimizer.defaults["fused"] and run.scaler.is_enabled()
    assert torch.backends.cudnn.benchmark
    with policy.autocast():
        assert run.model(data.x_test[:2]).dtype == torch.float16
    history = train.train(_net(), data, _cfg(epochs=3), progress=False, policy=policy)
    assert all(np.isfinite(history["train_loss"])) and len(history["epoch"]) == 3
    assert history["precision"] == "float16 autocast with a gradient scaler"
    # every clock reading waited for the device: warm-up's two, each epoch's two
    assert len(syncs) == 2 + 2 * 3


def test_the_seconds_are_the_clock_s_differences(monkeypatch):
    """A fake clock that ticks one second per reading: each epoch is charged the
    readings around it, not evaluation or warm-up."""
    ticks = iter(range(1000))
    monkeypatch.setattr(train.time, "perf_counter", lambda: float(next(ticks)))
    data = train.DeviceData(_Tiny(32), device="cpu")
    history = train.train(_net(), data, _cfg(epochs=3), progress=False)
    assert history["warmup_seconds"] == 1.0
    assert history["seconds"] == [1.0, 2.0, 3.0]


def test_evaluation_in_batches_is_the_whole_test_set_s():
    """Loss and accuracy summed on the device over batches (the last one short)."""
    data = train.DeviceData(_Tiny(16, n_test=700), device="cpu")
    model = _net()
    loss, accuracy = train.evaluate(model, data, batch_size=256)
    logits = model.eval()(data.x_test).float()
    expected = torch.nn.functional.cross_entropy(logits, data.y_test).item()
    assert loss == pytest.approx(expected, rel=1e-5)
    assert accuracy == pytest.approx((logits.argmax(1) == data.y_test).float().mean())


# --------------------------------------------------------------------------
# the fast recipe's parts (benchmarks/bench_05_cifar.py's fast_recipe)
# --------------------------------------------------------------------------


def test_one_cycle_from_a_floor_and_down_to_a_floor():
    """lr_start and lr_end: airbench's schedule starts at a fifth of the peak
    and ends at 7% of it; without them, the one-cycle schedule as before."""
    total, up = 100, 23
    rates = [train._lr_at(s, total, 1.0, 0.23, 0.2, 0.07) for s in range(total)]
    assert rates[0] == pytest.approx(0.2 + 0.8 / up)
    assert rates[up - 1] == pytest.approx(1.0) and max(rates) == pytest.approx(1.0)
    assert rates[-1] == pytest.approx(0.07 + 0.93 / (total - up))
    plain = [train._lr_at(s, total, 0.4, 0.2) for s in range(total)]
    assert plain[0] == pytest.approx(0.4 / 20) and plain[-1] == pytest.approx(0.4 / 80)


def test_the_whitening_layer_whitens_2x2_patches():
    """After init_whitening, the first 12 filters' outputs over the patches
    have (nearly) the identity as covariance; the other 12 are their negatives."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(200, 3, 33, 33, generator=gen)
    images = (base[..., :32, :32] + base[..., 1:, 1:]) * torch.tensor(
        [1.0, 2.0, 0.5]
    ).view(1, 3, 1, 1)  # correlated neighbours, unequal channels
    model = train.init_whitening(train.make_airbench((8, 8, 8)), images, eps=0.0)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, model[0].weight)  # no bias
    flat = out[:, :12].permute(1, 0, 2, 3).reshape(12, -1)
    covariance = flat @ flat.T / flat.shape[1]
    assert torch.allclose(covariance, torch.eye(12), atol=1e-3)
    assert torch.equal(model[0].weight[12:], -model[0].weight[:12])
    assert not model[0].weight.requires_grad


def test_test_time_augmentation_weighs_airbench_s_six_views():
    """Level 2: half the image and its mirror, a quarter each shifted pair
    (one pixel up-left, one down-right, the border reflected), by NumPy."""
    x = torch.randn(4, 3, 32, 32)

    def model(images):  # a function of position: any shift or flip changes it
        return images[:, :, :2, :5].reshape(len(images), -1)[:, :10]

    def views(a):
        return (model(a) + model(a.flip(-1))) / 2

    padded = torch.from_numpy(
        np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)), "reflect")
    )
    expected = (
        views(x) / 2 + (views(padded[..., :32, :32]) + views(padded[..., 2:, 2:])) / 4
    )
    assert torch.allclose(train.tta_logits(model, x, 2), expected)
    assert torch.allclose(train.tta_logits(model, x, 1), views(x))
    assert torch.equal(train.tta_logits(model, x, 0), model(x))


def test_translate2_flip_shifts_by_at_most_two_pixels_with_reflection():
    x = torch.randn(32, 3, 32, 32)
    out = train.translate2_flip(x, generator=torch.Generator().manual_seed(0))
    padded = torch.from_numpy(
        np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), "reflect")
    )
    for image, source in zip(out, padded, strict=True):
        candidates = [
            c
            for dy in range(5)
            for dx in range(5)
            for c in (source[:, dy : dy + 32, dx : dx + 32],)
            for c in (c, c.flip(-1))
        ]
        assert any(torch.equal(image, c) for c in candidates)


def test_bn_parameters_train_at_bias_lr_scale_times_the_rate():
    data = train.DeviceData(_Tiny(32), device="cpu")
    model = train.make_airbench((8, 8, 8))
    run = train._Run(
        model, data, _cfg(bias_lr_scale=64.0), train.Policy.for_device("cpu")
    )
    run.train_step(data.x_train[:16], data.y_train[:16])
    rates = {id(p): g["lr"] for g in run.optimizer.param_groups for p in g["params"]}
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(rates[id(m.bias)] == pytest.approx(64 * run.lr) for m in bn)
    assert all(id(m.weight) not in rates for m in bn)  # frozen at 1
    assert rates[id(model[2].weight)] == pytest.approx(run.lr)


def test_the_fast_recipe_s_last_evaluation_is_timed_with_tta():
    data = train.DeviceData(_Tiny(64), device="cpu")
    model = train.make_airbench((8, 8, 8))
    history = train.train(model, data, _cfg(tta=2), progress=False)
    assert 0.0 <= history["tta_accuracy"] <= 1.0
    assert history["tta_cpu_seconds"] > 0.0 and history["tta_seconds"] > 0.0
    assert "tta_accuracy" not in train.train(_net(), data, _cfg(), progress=False)
