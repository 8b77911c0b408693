"""The data layer: IDX parsing, checksums, cache, download, digits, minibatches (SPEC T2, E3).

Everything runs offline: Fashion-MNIST is replaced by tiny IDX files built here, served
from a local HTTP server on 127.0.0.1; the published checksum table is swapped for theirs.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dropout_ref.course.data import (
    DATASETS,
    ChecksumError,
    DataError,
    DataFormatError,
    Dataset,
    DownloadError,
    digits,
    download,
    fashion_mnist,
    load_dataset,
    minibatches,
)
from dropout_ref.course.data.fashion_mnist import IDXFileSpec
from dropout_ref.course.data.idx import parse_idx, read_idx

# --------------------------------------------------------------------------- helpers

_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B,
          np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as IDX with struct, independently of the code under test."""
    header = struct.pack(">BBBB", 0, 0, _CODES[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


TINY_SHAPES = {
    "train_images": (7, 4, 3),
    "train_labels": (7,),
    "test_images": (5, 4, 3),
    "test_labels": (5,),
}


@pytest.fixture
def tiny() -> dict[str, tuple[str, bytes, np.ndarray]]:
    """Role -> (official gz filename, gz bytes, array) for a miniature Fashion-MNIST."""
    rng = np.random.default_rng(123)
    out = {}
    for role, spec in fashion_mnist.FILES.items():
        shape = TINY_SHAPES[role]
        if role.endswith("images"):
            array = rng.integers(0, 256, size=shape, dtype=np.uint8)
            array.flat[0], array.flat[1] = 0, 255
        else:
            array = rng.integers(0, 10, size=shape, dtype=np.uint8)
        out[role] = (spec.filename, gzip.compress(idx_bytes(array), mtime=0), array)
    return out


@pytest.fixture
def tiny_table(tiny, monkeypatch) -> dict[str, IDXFileSpec]:
    """Swap the published checksum table for one describing the tiny files."""
    table = {
        role: IDXFileSpec(name, md5(gz), TINY_SHAPES[role]) for role, (name, gz, _) in tiny.items()
    }
    monkeypatch.setattr(fashion_mnist, "FILES", table)
    return table


def write_files(directory: Path, tiny, *, gz: bool = True) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data, _ in tiny.values():
        if gz:
            (directory / name).write_bytes(data)
        else:
            (directory / name.removesuffix(".gz")).write_bytes(gzip.decompress(data))


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files; under /truncated/ it announces the full length but sends half."""

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/truncated/"):
            data = (Path(self.directory) / self.path.removeprefix("/truncated/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 (ephemeral port) serving ``tmp_path / 'www'``."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def closed_port_url(monkeypatch) -> str:
    """A URL on a localhost port nothing listens on: connections are refused at once."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def cache_contents(cache: Path) -> list[str]:
    folder = cache / "fashion-mnist"
    return sorted(os.listdir(folder)) if folder.exists() else []


def check_tiny_dataset(data: Dataset, tiny) -> None:
    """The loaded data equal the tiny arrays, scaled like d2l's ToTensor (float32 / 255)."""
    assert data.name == "fashion-mnist"
    assert data.num_inputs == 12 and data.num_classes == 10
    for split in ("train", "test"):
        images = getattr(data, f"{split}_images")
        labels = getattr(data, f"{split}_labels")
        raw = tiny[f"{split}_images"][2]
        assert images.dtype == np.float32 and images.flags.c_contiguous
        assert images.shape == (raw.shape[0], 12)
        np.testing.assert_array_equal(
            images, raw.reshape(len(raw), -1).astype(np.float32) / np.float32(255)
        )
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(labels, tiny[f"{split}_labels"][2])
    assert data.train_images.min() == 0.0 and data.train_images.max() == 1.0


# --------------------------------------------------------------------------- IDX parsing


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_t2_read_idx_raw_and_gzip(tmp_path, dtype, compress):
    """T2: every IDX element type, big-endian, raw or gzip (recognised by content)."""
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == "u1":
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    data = idx_bytes(array)
    path = tmp_path / "file-idx3"  # no .gz suffix on purpose: detection is by magic bytes
    path.write_bytes(gzip.compress(data) if compress else data)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == (2, 3, 4) and out.flags.writeable
    np.testing.assert_array_equal(out, array)


def test_t2_parse_idx_one_dimensional_labels():
    """T2: the idx1 label layout (magic 0x00000801)."""
    labels = np.array([9, 0, 0, 3, 0, 2], dtype=np.uint8)
    data = idx_bytes(labels)
    assert data[:4] == b"\x00\x00\x08\x01"
    np.testing.assert_array_equal(parse_idx(data), labels)


@pytest.mark.parametrize(
    ("cut", "needle"),
    [(2, "truncated"), (10, "truncated inside its header"), (-1, "truncated")],
    ids=["magic", "header", "data"],
)
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_e3_truncated_idx_names_the_file(tmp_path, cut, needle, compress):
    """E3: a truncated file raises DataFormatError naming the file."""
    data = idx_bytes(np.zeros((3, 2, 2), dtype=np.uint8))[:cut]
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(DataFormatError, match=needle) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_e3_truncated_gzip_stream_names_the_file(tmp_path):
    """E3: a gzip file cut short (an interrupted copy) raises DataFormatError naming it."""
    gz = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8).reshape(10, 20)))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DataFormatError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "header", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"PK\x03\x04"], ids=str
)
def test_e3_bad_magic_names_the_file(tmp_path, header):
    """E3: a wrong magic number (not IDX, unknown type code) raises naming the file."""
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(header + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DataFormatError, match="bad magic number") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_e3_trailing_bytes_are_corruption(tmp_path):
    """E3: bytes after the announced data are reported, not silently ignored."""
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(idx_bytes(np.arange(4, dtype=np.uint8)) + b"\x00\x00")
    with pytest.raises(DataFormatError, match="2 unexpected bytes") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- published table


def test_t2_published_table():
    """T2: the four official files and MD5s of Zalando's README, official URL first."""
    assert {spec.filename: spec.md5 for spec in fashion_mnist.FILES.values()} == {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    assert fashion_mnist.MIRRORS[0] == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    assert fashion_mnist.FILES["train_images"].shape == (60000, 28, 28)
    assert fashion_mnist.FILES["test_labels"].shape == (10000,)
    assert len(fashion_mnist.CLASS_NAMES) == 10


# --------------------------------------------------------------------------- --data-dir


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "uncompressed"])
def test_t2_data_dir(tmp_path, tiny, tiny_table, gz):
    """T2: a local directory with the four files, gzip (MD5-checked) or uncompressed."""
    write_files(tmp_path / "fm", tiny, gz=gz)
    data = load_dataset(data_dir=tmp_path / "fm", cache_dir=tmp_path / "cache")
    check_tiny_dataset(data, tiny)
    assert not (tmp_path / "cache").exists()  # data_dir never touches the cache


def test_e3_data_dir_wrong_md5(tmp_path, tiny, tiny_table):
    """E3: a damaged .gz in data_dir: ChecksumError naming it, expected and actual MD5."""
    write_files(tmp_path, tiny)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    damaged = path.read_bytes()[:-3] + b"xyz"
    path.write_bytes(damaged)
    with pytest.raises(ChecksumError) as info:
        load_dataset(data_dir=tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert tiny_table["train_labels"].md5 in message and md5(damaged) in message
    assert info.value.expected == tiny_table["train_labels"].md5


def test_e3_data_dir_uncompressed_truncated(tmp_path, tiny, tiny_table):
    """E3: no MD5 for uncompressed files, but a truncated one is caught by its structure."""
    write_files(tmp_path, tiny, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataFormatError, match="truncated") as info:
        load_dataset(data_dir=tmp_path)
    assert str(path) in str(info.value)


def test_e3_data_dir_uncompressed_wrong_shape_or_labels(tmp_path, tiny, tiny_table):
    """E3: an uncompressed file with the wrong count, or labels >= 10, is refused."""
    write_files(tmp_path, tiny, gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(6, dtype=np.uint8)))  # 6 labels for 7 images
    with pytest.raises(DataFormatError, match=r"shape \(6,\), expected \(7,\)"):
        load_dataset(data_dir=tmp_path)
    path.write_bytes(idx_bytes(np.full(7, 10, dtype=np.uint8)))
    with pytest.raises(DataFormatError, match="label 10"):
        load_dataset(data_dir=tmp_path)


def test_t2_data_dir_missing_files(tmp_path, tiny, tiny_table):
    """T2: missing files are listed by name with the two ways out."""
    write_files(tmp_path, tiny)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=re.escape("t10k-labels-idx1-ubyte.gz")) as info:
        load_dataset(data_dir=tmp_path)
    assert "--dataset digits" in str(info.value)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(data_dir=tmp_path / "nowhere")


# --------------------------------------------------------------------------- download + cache


def test_t2_download_verifies_and_caches(tmp_path, tiny, tiny_table, server, monkeypatch):
    """T2: download from the mirror, verify, cache; the next load works without network."""
    url, root = server
    write_files(root, tiny)
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (url,))
    cache = tmp_path / "cache"
    check_tiny_dataset(load_dataset(cache_dir=cache), tiny)
    assert cache_contents(cache) == sorted(spec.filename for spec in tiny_table.values())
    for spec in tiny_table.values():
        assert md5((cache / "fashion-mnist" / spec.filename).read_bytes()) == spec.md5
    for name, *_ in tiny.values():
        (root / name).unlink()
    check_tiny_dataset(load_dataset(cache_dir=cache, download=False), tiny)
    check_tiny_dataset(load_dataset(cache_dir=cache), tiny)  # cached: no request made


def test_t2_cache_env_var(tmp_path, tiny, tiny_table, server, monkeypatch):
    """T2: $DROPOUT_REF_CACHE moves the cache; cache_dir= wins over it."""
    url, root = server
    write_files(root, tiny)
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (url,))
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "env"))
    assert download.default_cache_dir() == tmp_path / "env"
    load_dataset()
    assert len(cache_contents(tmp_path / "env")) == 4
    load_dataset(cache_dir=tmp_path / "arg")
    assert len(cache_contents(tmp_path / "arg")) == 4
    monkeypatch.delenv(download.CACHE_ENV)
    assert download.default_cache_dir().name.lower().startswith("dropout-ref") or (
        "dropout-ref" in str(download.default_cache_dir())
    )


def test_e3_download_checksum_mismatch_leaves_nothing(tmp_path, tiny, tiny_table, server,
                                                      monkeypatch):
    """E3: wrong bytes from the server: names file, expected and got MD5; cache stays empty."""
    url, root = server
    write_files(root, tiny)
    wrong = b"not the published file"
    (root / "train-images-idx3-ubyte.gz").write_bytes(wrong)
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (url,))
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError) as info:
        load_dataset(cache_dir=cache)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert f"expected MD5 {tiny_table['train_images'].md5}" in message
    assert md5(wrong) in message
    assert cache_contents(cache) == []


def test_e3_truncated_download_leaves_nothing(tmp_path, tiny, tiny_table, server, monkeypatch):
    """E3: a transfer cut short is reported with the expected checksum; no partial file."""
    url, root = server
    write_files(root, tiny)
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (url + "truncated/",))
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="truncated") as info:
        load_dataset(cache_dir=cache)
    assert tiny_table["train_images"].md5 in str(info.value)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert cache_contents(cache) == []


def test_t2_download_404(tmp_path, tiny, tiny_table, server, monkeypatch):
    """T2: a 404 is reported with the URL and status; nothing is written."""
    url, _root = server  # serves nothing
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (url,))
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        load_dataset(cache_dir=cache)
    assert url + "train-images-idx3-ubyte.gz" in str(info.value)
    assert cache_contents(cache) == []


def test_t2_falls_back_to_next_mirror(tmp_path, tiny, tiny_table, server, monkeypatch,
                                      closed_port_url):
    """T2: each mirror is tried once in order; the first good one wins."""
    url, root = server
    write_files(root, tiny)
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (closed_port_url, url + "missing/", url))
    check_tiny_dataset(load_dataset(cache_dir=tmp_path / "cache"), tiny)


def test_t2_offline_message(tmp_path, tiny, tiny_table, closed_port_url, monkeypatch):
    """T2: without network the error says the download failed, why, and the two ways out."""
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (closed_port_url,))
    cache = tmp_path / "cache"
    start = time.perf_counter()
    with pytest.raises(DownloadError) as info:
        load_dataset(cache_dir=cache)
    assert time.perf_counter() - start < 5  # one attempt per mirror, no retry storm
    message = str(info.value)
    assert "download failed" in message and "refused" in message.lower()
    assert "--data-dir DIR" in message and "--dataset digits" in message
    assert closed_port_url in message
    for spec in tiny_table.values():
        assert spec.filename in message
    assert cache_contents(cache) == []


def test_t2_download_false(tmp_path, tiny, tiny_table):
    """T2: download=False with an empty cache names the missing file and the ways out."""
    with pytest.raises(DataError, match="not in the cache") as info:
        load_dataset(cache_dir=tmp_path, download=False)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert "--dataset digits" in str(info.value)


def test_e3_damaged_cache_file_is_replaced(tmp_path, tiny, tiny_table, server, monkeypatch):
    """E3: a cached file whose MD5 no longer matches is refused, then re-downloaded."""
    url, root = server
    write_files(root, tiny)
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (url,))
    cache = tmp_path / "cache"
    load_dataset(cache_dir=cache)
    cached = cache / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    cached.write_bytes(cached.read_bytes()[:10])
    with pytest.raises(DataError, match="damaged") as info:
        load_dataset(cache_dir=cache, download=False)
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)
    check_tiny_dataset(load_dataset(cache_dir=cache), tiny)
    assert md5(cached.read_bytes()) == tiny_table["test_images"].md5


# --------------------------------------------------------------------------- digits


def test_t2_digits_offline_dataset():
    """T2: the offline data set: shapes, dtypes, range, classes, stratified 80/20 split."""
    data = load_dataset("digits")
    assert data.name == "digits" and data.num_inputs == 64 and data.num_classes == 10
    assert data.class_names == tuple("0123456789")
    assert data.train_images.shape == (1438, 64) and data.test_images.shape == (359, 64)
    for images, labels in ((data.train_images, data.train_labels),
                           (data.test_images, data.test_labels)):
        assert images.dtype == np.float32 and images.flags.c_contiguous
        assert labels.dtype == np.int64 and labels.shape == images.shape[:1]
        assert images.min() == 0.0 and images.max() == 1.0
        np.testing.assert_array_equal(images * 16, np.round(images * 16))  # k/16 values
        assert set(np.unique(labels)) == set(range(10))
    counts = np.bincount(data.train_labels) + np.bincount(data.test_labels)
    np.testing.assert_array_equal(np.bincount(data.test_labels), np.round(0.2 * counts))


def test_t2_digits_split_is_deterministic():
    """T2: the split is fixed: same on every call and pinned to numpy's PCG64 stream."""
    first, second = load_dataset("digits"), load_dataset("digits")
    np.testing.assert_array_equal(first.test_images, second.test_images)
    np.testing.assert_array_equal(first.train_labels, second.train_labels)
    from sklearn.datasets import load_digits

    train, test = digits.stratified_split(load_digits().target)
    assert test[:10].tolist() == [5, 9, 12, 14, 16, 17, 19, 23, 24, 34]
    assert int(test.sum()) == 324981
    assert np.intersect1d(train, test).size == 0 and train.size + test.size == 1797


def test_t2_load_dataset_arguments():
    """T2: unknown names list the known ones; data_dir is refused for digits."""
    assert DATASETS == ("fashion-mnist", "digits")
    with pytest.raises(ValueError, match="fashion-mnist, digits"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="data_dir"):
        load_dataset("digits", data_dir="/tmp")


def test_t2_dataset_validates_arrays():
    """T2: a Dataset refuses arrays of the wrong dtype or mismatched lengths."""
    good = np.zeros((3, 4), np.float32), np.zeros(3, np.int64)
    with pytest.raises(ValueError, match="train_images"):
        Dataset("x", good[0].astype(np.float64), good[1], *good, ("a",))
    with pytest.raises(ValueError, match="test_labels"):
        Dataset("x", *good, good[0], good[1][:2], ("a",))


@pytest.mark.parametrize("split", ["train", "test"])
def test_t2_dataset_refuses_an_empty_split(split):
    """T2: an empty split is refused up front (training would divide by zero, compare hang)."""
    good = np.zeros((3, 4), np.float32), np.zeros(3, np.int64)
    empty = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    arrays = (*empty, *good) if split == "train" else (*good, *empty)
    with pytest.raises(ValueError, match=f"{split} split must hold at least one sample"):
        Dataset("x", *arrays, ("a",))


# --------------------------------------------------------------------------- minibatches


@settings(max_examples=40, deadline=None)
@given(count=st.integers(0, 60), batch_size=st.integers(1, 70), shuffle=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_t2_minibatches_cover_every_sample_once(count, batch_size, shuffle, seed):
    """T2: each epoch visits every sample exactly once, in full batches but the last."""
    images = np.arange(count * 2, dtype=np.float32).reshape(count, 2)
    labels = np.arange(count, dtype=np.int64)
    batches = list(minibatches(images, labels, batch_size, shuffle=shuffle,
                               rng=np.random.default_rng(seed)))
    sizes = [len(y) for _, y in batches]
    assert len(batches) == -(-count // batch_size)
    assert all(size == batch_size for size in sizes[:-1])
    assert sum(sizes) == count
    seen = np.concatenate([y for _, y in batches]) if batches else np.array([], np.int64)
    assert sorted(seen.tolist()) == list(range(count))
    if not shuffle:
        np.testing.assert_array_equal(seen, labels)
    for x, y in batches:  # images stay paired with their labels
        np.testing.assert_array_equal(x[:, 0], 2 * y)


def test_t2_minibatches_shuffle_is_reproducible_and_fresh_per_epoch():
    """T2: the same seed gives the same order; the next epoch draws a new permutation."""
    images, labels = np.zeros((100, 1), np.float32), np.arange(100)
    order = lambda rng: np.concatenate(  # noqa: E731
        [y for _, y in minibatches(images, labels, 32, shuffle=True, rng=rng)])
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    epoch1 = order(rng_a)
    np.testing.assert_array_equal(epoch1, order(rng_b))
    assert not np.array_equal(epoch1, labels)
    assert not np.array_equal(epoch1, order(rng_a))


@pytest.mark.parametrize(
    ("batch_size", "error"),
    [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError), ("8", TypeError)],
)
def test_t2_minibatches_bad_batch_size(batch_size, error):
    """T2: batch_size must be a positive int; the error names it and the value, at call time."""
    with pytest.raises(error, match="batch_size") as info:
        minibatches(np.zeros((4, 1)), np.zeros(4), batch_size, shuffle=False)
    assert repr(batch_size) in str(info.value)


def test_t2_minibatches_bad_arguments():
    """T2: mismatched lengths and a non-Generator rng are refused by name."""
    with pytest.raises(ValueError, match="same number of samples"):
        minibatches(np.zeros((4, 1)), np.zeros(3), 2, shuffle=False)
    with pytest.raises(TypeError, match="rng"):
        minibatches(np.zeros((4, 1)), np.zeros(4), 2, shuffle=True, rng=np.random.RandomState(0))


def test_t2_downloaded_files_follow_the_umask(tmp_path, tiny, tiny_table, server, monkeypatch,
                                               umask_022):
    """T2: cache files get the mode open() would give (0644 under umask 022), not mkstemp's 0600."""
    url, root = server
    write_files(root, tiny)
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (url,))
    load_dataset(cache_dir=tmp_path)
    for spec in tiny_table.values():
        assert (tmp_path / "fashion-mnist" / spec.filename).stat().st_mode & 0o777 == 0o644
