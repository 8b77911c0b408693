"""The course's own ``dropout_layer`` (D2L, chapter "dropout"), copied verbatim per framework.

Source: /work/shared/seeds/000_646c5fa4cbb902b9.txt (the MXNet, PyTorch and TensorFlow
versions, side by side). Each framework is imported lazily, inside the function.
"""



from __future__ import annotations


def course_tensorflow(X, dropout):
    import tensorflow as tf

    assert 0 <= dropout <= 1
    # 在这种情况下,所有元素都被丢弃
    if dropout == 1:
        return tf.zeros_like(X)
    # 在这种情况下,所有元素都被保留
    if dropout == 0:
        return X
    mask = tf.random.uniform(shape=tf.shape(X), minval=0, maxval=1) < 1 - dropout
    return tf.cast(mask, dtype=tf.float32) * X / (1.0 - dropout)


def course_torch(X, dropout):
    import torch

    assert 0 <= dropout <= 1
    if dropout == 1:
        return torch.zeros_like(X)
    if dropout == 0:
        return X
    mask = (torch.rand(X.shape) > dropout).float()
    return mask * X / (1.0 - dropout)


def course_mxnet(X, dropout):
    from dropout_ref.mxnet.framework import mnp as np

    assert 0 <= dropout <= 1
    if dropout == 1:
        return np.zeros_like(X)
    if dropout == 0:
        return X
    mask = np.random.uniform(0, 1, X.shape) > dropout
    return mask.astype(np.float32) * X / (1.0 - dropout)


def mxnet_where_scalar_branch(X, p):
    """A correct-looking MXNet dropout hit by MXNet 1.9.1's ``where(c, x, 0.0)`` gradient bug."""
    from dropout_ref.mxnet.framework import mnp

    if p == 0:
        return X
    keep = mnp.random.uniform(0, 1, size=X.shape, dtype="float32") >= p
    scaled = X * (1.0 / (1.0 - p)) if p < 1 else X * 0
    return mnp.where(keep, scaled, 0.0)
