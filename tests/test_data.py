"""Data loading: shipped files, the official CIFAR-10 path, fallbacks."""

from __future__ import annotations

import hashlib
import io
import tarfile

import numpy as np
import pytest

from helpers import data

from .conftest import ROOT


def test_shipped_files_match_their_checksums():
    sums = (ROOT / "data" / "SHA256SUMS").read_text().split("\n")
    listed = {}
    for line in filter(None, sums):
        digest, name = line.split()
        listed[name] = digest
    data = ROOT / "data"
    shipped = {
        p.relative_to(data).as_posix()
        for p in data.rglob("*")
        if p.suffix in {".npz", ".json"}
    }
    assert set(listed) == shipped
    for name, digest in listed.items():
        assert hashlib.sha256((ROOT / "data" / name).read_bytes()).hexdigest() == digest


def test_mnist_5k_and_its_split():
    mnist = data.load_mnist()
    assert mnist.images.shape == (5000, 28, 28) and mnist.images.dtype == np.uint8
    assert np.bincount(mnist.labels).tolist() == [500] * 10
    x_train, y_train, x_test, y_test = mnist.split(n_test=1000, seed=0)
    assert x_train.shape == (4000, 784) and x_test.shape == (1000, 784)
    assert np.bincount(y_test).tolist() == [100] * 10
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    again = mnist.split(n_test=1000, seed=0)
    np.testing.assert_array_equal(again[1], y_train)


def test_subset_is_balanced_real_images(fresh_cache):
    subset = data.load_subset()
    assert subset.x_train.shape == (5000, 32, 32, 3) and subset.x_test.shape == (
        1000,
        32,
        32,
        3,
    )
    assert np.bincount(subset.y_train).tolist() == [500] * 10
    assert subset.classes[0] == "airplane" and subset.classes[-1] == "truck"
    mean = subset.x_train.reshape(-1, 3).mean(0) / 255
    assert np.allclose(mean, [0.49, 0.48, 0.45], atol=0.03)  # CIFAR-10's channel means


# --------------------------------------------------------------------------
# the official binary release, built small in its exact format
# --------------------------------------------------------------------------


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BNCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BNCOURSE_CIFAR10", raising=False)
    return tmp_path / "cache"


def _records(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    raw = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1)
    return raw.tobytes(), images.transpose(0, 2, 3, 1), labels


@pytest.fixture
def official(tmp_path):
    """A miniature cifar-10-binary.tar.gz (4 images per batch file) and its truth."""
    truth = {}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for i, name in enumerate([*data.CIFAR10_TRAIN_FILES, data.CIFAR10_TEST_FILE]):
            raw, images, labels = _records(4, seed=i)
            truth[name] = (images, labels)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        meta = b"airplane\nautomobile\n"
        info = tarfile.TarInfo("cifar-10-batches-bin/batches.meta.txt")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    archive = tmp_path / "served" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(buffer.getvalue())
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    return archive, md5, truth


def _load(archive, md5, **kw):
    return data.load_cifar10(
        url=archive.as_uri(), md5=md5, size=archive.stat().st_size, **kw
    )


def test_download_verify_unpack_and_read_the_official_format(
    official, fresh_cache, monkeypatch, capsys
):
    archive, md5, truth = official
    monkeypatch.setenv("BNCOURSE_DOWNLOAD", "1")
    loaded = _load(archive, md5)
    assert "official binary release" in loaded.source
    train = [truth[name] for name in data.CIFAR10_TRAIN_FILES]
    np.testing.assert_array_equal(loaded.x_train, np.concatenate([t[0] for t in train]))
    np.testing.assert_array_equal(loaded.y_train, np.concatenate([t[1] for t in train]))
    np.testing.assert_array_equal(loaded.x_test, truth[data.CIFAR10_TEST_FILE][0])
    assert "CIFAR-10 source: official binary release" in capsys.readouterr().out
    assert (fresh_cache / "cifar-10-batches-bin" / "test_batch.bin").is_file()
    assert not list(fresh_cache.glob("*.part"))
    size = archive.stat().st_size
    archive.unlink()  # a second load needs no network: the cache is used
    again = data.load_cifar10(url=archive.as_uri(), md5=md5, size=size, verbose=False)
    assert "official" in again.source


def test_corrupt_cached_archive_is_replaced_never_trusted(
    official, fresh_cache, monkeypatch
):
    archive, md5, _ = official
    monkeypatch.setenv("BNCOURSE_DOWNLOAD", "1")
    fresh_cache.mkdir(parents=True)
    cached = fresh_cache / "cifar-10-binary.tar.gz"
    cached.write_bytes(archive.read_bytes()[:-10] + b"0123456789")  # same size, bad MD5
    loaded = _load(archive, md5, verbose=False)
    assert "official" in loaded.source
    assert hashlib.md5(cached.read_bytes()).hexdigest() == md5


def test_partial_download_falls_back_to_the_subset_with_a_message(
    official, fresh_cache, monkeypatch, capsys
):
    archive, md5, _ = official
    monkeypatch.setenv("BNCOURSE_DOWNLOAD", "1")
    truncated = archive.with_name("short.tar.gz")
    truncated.write_bytes(archive.read_bytes()[:100])
    loaded = data.load_cifar10(
        url=truncated.as_uri(), md5=md5, size=archive.stat().st_size
    )
    assert "subset" in loaded.source
    out = capsys.readouterr().out
    assert "partial or corrupt" in out and "Traceback" not in out
    assert not (fresh_cache / "cifar-10-binary.tar.gz").exists()
    assert not list(fresh_cache.glob("*.part"))


def test_unreachable_url_falls_back(fresh_cache, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("BNCOURSE_DOWNLOAD", "1")
    missing = (tmp_path / "nowhere.tar.gz").as_uri()
    loaded = data.load_cifar10(url=missing, md5="0" * 32, size=None)
    assert "subset" in loaded.source
    assert "not available" in capsys.readouterr().out


def test_fast_mode_never_downloads(official, fresh_cache, monkeypatch, capsys):
    archive, md5, _ = official
    monkeypatch.setenv("BNCOURSE_FAST", "1")
    monkeypatch.delenv("BNCOURSE_DOWNLOAD", raising=False)
    loaded = _load(archive, md5)
    assert "subset" in loaded.source and not fresh_cache.exists()
    assert "downloading is off" in capsys.readouterr().out


def test_configured_folder_archive_and_npz(
    official, fresh_cache, monkeypatch, tmp_path
):
    archive, md5, truth = official
    folder = tmp_path / "unpacked"
    data.unpack_archive(archive, folder / "cifar-10-batches-bin")
    monkeypatch.setenv("BNCOURSE_CIFAR10", str(folder))
    assert "official binary release" in data.load_cifar10(verbose=False).source
    subset = ROOT / "data" / "cifar10_subset.npz"
    monkeypatch.setenv("BNCOURSE_CIFAR10", str(subset))
    loaded = data.load_cifar10(verbose=False)
    assert "JPEG-encoded" in loaded.source and len(loaded.x_test) == 1000


def test_configured_bad_path_says_so_and_falls_back(
    fresh_cache, monkeypatch, capsys, tmp_path
):
    monkeypatch.setenv("BNCOURSE_CIFAR10", str(tmp_path / "missing.npz"))
    loaded = data.load_cifar10()
    assert "subset" in loaded.source
    assert "does not exist" in capsys.readouterr().out
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    monkeypatch.setenv("BNCOURSE_CIFAR10", str(junk))
    assert "subset" in data.load_cifar10().source
    assert "not a readable .npz" in capsys.readouterr().out


def test_truncated_binary_file_is_named(tmp_path):
    bad = tmp_path / "data_batch_1.bin"
    bad.write_bytes(b"\x01" * (data.RECORD + 5))
    with pytest.raises(data.DataError, match="truncated"):
        data.read_cifar10_bin(bad)


def test_archive_members_cannot_escape_the_target(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        raw = b"x"
        info = tarfile.TarInfo("../../evil.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(raw))
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(data.DataError, match="no member"):
        data.unpack_archive(archive, tmp_path / "out" / "cifar-10-batches-bin")
    assert not (tmp_path.parent / "evil.txt").exists()


def test_missing_shipped_file_says_what_to_do(monkeypatch, tmp_path):
    fake = tmp_path / "data"
    fake.mkdir()
    (fake / "README.md").write_text("x")
    (fake / "mnist_5k.npz").write_bytes(b"corrupt")
    monkeypatch.setenv("BNCOURSE_DATA", str(fake))
    with pytest.raises(data.DataError, match="git checkout -- data/"):
        data.load_mnist()
    with pytest.raises(data.DataError, match="git checkout -- data/"):
        data.load_subset()
