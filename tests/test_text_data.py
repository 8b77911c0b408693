"""The GPT's character-level text (issue 15, item 4): deterministic, offline, split at the end."""

from __future__ import annotations

import numpy as np
import pytest

from dropout_ref.course.data.text import (
    CharVocab,
    char_dataset,
    load_char_dataset,
    sample_batch,
    topics_text,
)


@pytest.fixture(scope="module")
def data():
    return load_char_dataset()


def test_text_is_pydoc_topics_in_sorted_key_order(data):
    from pydoc_data.topics import topics

    text = topics_text()
    assert text == topics_text()  # deterministic
    first = sorted(topics)[0]
    assert text.startswith(topics[first])
    assert len(text) > 100_000
    assert data.vocab.chars == "".join(sorted(set(text)))
    assert data.vocab_size == len(set(text))


def test_split_is_the_last_tenth_and_covers_the_text(data):
    text = topics_text()
    whole = np.concatenate([data.train, data.val])
    assert data.decode(whole) == text
    assert abs(len(data.val) / len(whole) - 0.1) < 1 / len(whole) + 1e-12
    assert data.split("train") is data.train and data.split("val") is data.val
    with pytest.raises(ValueError, match="split"):
        data.split("test")
    meta = data.meta()
    assert meta["chars"] == data.vocab.chars and meta["val_tokens"] == len(data.val)


def test_encode_decode_round_trip_and_errors(data):
    sample = "def f(x):\n    return x"
    ids = data.encode(sample)
    assert ids.dtype == np.int64 and data.decode(ids) == sample
    assert data.decode(list(ids)) == sample
    with pytest.raises(ValueError, match="'\\\\x00'"):
        data.encode("a\x00")
    with pytest.raises(ValueError, match=f"token id {data.vocab_size} at position 1"):
        data.decode([0, data.vocab_size])
    with pytest.raises(ValueError, match="token id -1"):
        data.decode([-1])
    with pytest.raises(ValueError, match="1-D"):
        data.decode([[0]])


def test_vocab_refuses_repeats_and_empty():
    with pytest.raises(ValueError, match="repeat"):
        CharVocab("aa")
    with pytest.raises(ValueError, match="non-empty"):
        CharVocab("")


def test_char_dataset_refuses_bad_fraction_and_tiny_text():
    with pytest.raises(ValueError, match="val_fraction"):
        char_dataset("abcdef", 1.0)
    with pytest.raises(TypeError, match="val_fraction"):
        char_dataset("abcdef", True)
    with pytest.raises(ValueError, match="each needs 2"):
        char_dataset("abc", 0.1)


def test_sample_batch_windows_and_targets(data):
    x, y = sample_batch(data.train, 4, 16, np.random.default_rng(3))
    assert x.shape == y.shape == (4, 16) and x.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    text = data.decode(data.train)
    for row_x, row_y in zip(x, y, strict=True):
        window = data.decode(row_x) + data.decode(row_y[-1:])
        assert window in text
    x2, y2 = sample_batch(data.train, 4, 16, np.random.default_rng(3))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_sample_batch_reaches_the_last_window():
    ids = np.arange(6)
    rng = np.random.default_rng(0)
    # 2 possible starts; the chance that 200 draws miss one of them is 2 * 2**-200.
    x, y = sample_batch(ids, 200, 4, rng)
    assert {tuple(r) for r in x} == {(0, 1, 2, 3), (1, 2, 3, 4)}
    assert y.max() == 5


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"block_size": 2.0}, TypeError, "block_size"),
        ({"block_size": 6}, ValueError, "block_size \\+ 1 = 7"),
        ({"rng": 0}, TypeError, "rng"),
    ],
)
def test_sample_batch_refuses_bad_arguments(kwargs, error, match):
    arguments = {"batch_size": 2, "block_size": 3, "rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(error, match=match):
        sample_batch(np.arange(6), **arguments)
