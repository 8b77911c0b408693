"""The concise PyTorch MLP of the dropout chapter (see the package docstring)."""

# The course's own idioms (``l``, ``type(m) == nn.Linear``, ``zip`` unchecked) are kept as written.
# ruff: noqa: E741, E721

import torch
from torch import nn

dropout1, dropout2 = 0.2, 0.5


def course_model(lr=0.5):
    """Return ``(net, loss, trainer)`` as the chapter builds them."""
    net = nn.Sequential(nn.Flatten(),
            nn.Linear(784, 256),
            nn.ReLU(),
            # 在第一个全连接层之后添加一个dropout层
            nn.Dropout(dropout1),
            nn.Linear(256, 256),
            nn.ReLU(),
            # 在第二个全连接层之后添加一个dropout层
            nn.Dropout(dropout2),
            nn.Linear(256, 10))

    def init_weights(m):
        if type(m) == nn.Linear:
            nn.init.normal_(m.weight, std=0.01)

    net.apply(init_weights)
    loss = nn.CrossEntropyLoss(reduction='none')
    trainer = torch.optim.SGD(net.parameters(), lr=lr)
    return net, loss, trainer


def train_batch(net, loss, updater, X, y):
    """One batch of ``d2l.train_epoch_ch3`` (PyTorch): returns the batch's mean loss."""
    net.train()
    y_hat = net(X)
    l = loss(y_hat, y)
    updater.zero_grad()
    l.mean().backward()
    updater.step()
    return l.mean().item()
