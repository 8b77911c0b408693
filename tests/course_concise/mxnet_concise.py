"""The concise MXNet (Gluon) MLP of the dropout chapter (see the package docstring)."""

# The course's own idioms (``l``, ``type(m) == nn.Linear``, ``zip`` unchecked) are kept as written.
# ruff: noqa: E741

from dropout_ref.mxnet.framework import autograd, gluon, mx  # MXNet 1.9.1 under NumPy >= 1.24

init = mx.init
nn = gluon.nn

dropout1, dropout2 = 0.2, 0.5


def course_model(lr=0.5):
    """Return ``(net, loss, trainer)`` as the chapter builds them."""
    net = nn.Sequential()
    net.add(nn.Dense(256, activation="relu"),
            # 在第一个全连接层之后添加一个dropout层
            nn.Dropout(dropout1),
            nn.Dense(256, activation="relu"),
            # 在第二个全连接层之后添加一个dropout层
            nn.Dropout(dropout2),
            nn.Dense(10))
    net.initialize(init.Normal(sigma=0.01))
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': lr})
    return net, loss, trainer


def train_batch(net, loss, updater, X, y):
    """One batch of ``d2l.train_epoch_ch3`` (MXNet): returns the batch's mean loss."""
    with autograd.record():
        y_hat = net(X)
        l = loss(y_hat, y)
    l.backward()
    updater.step(X.shape[0])
    return float(l.mean().asnumpy())
