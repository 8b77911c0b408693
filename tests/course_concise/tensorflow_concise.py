"""The concise TensorFlow (Keras) MLP of the dropout chapter (see the package docstring)."""

# The course's own idioms (``l``, ``type(m) == nn.Linear``, ``zip`` unchecked) are kept as written.
# ruff: noqa: E741, B905

import tensorflow as tf

dropout1, dropout2 = 0.2, 0.5


def course_model(lr=0.5):
    """Return ``(net, loss, trainer)`` as the chapter builds them."""
    net = tf.keras.models.Sequential([
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(256, activation=tf.nn.relu),
        # 在第一个全连接层之后添加一个dropout层
        tf.keras.layers.Dropout(dropout1),
        tf.keras.layers.Dense(256, activation=tf.nn.relu),
        # 在第二个全连接层之后添加一个dropout层
        tf.keras.layers.Dropout(dropout2),
        tf.keras.layers.Dense(10),
    ])
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trainer = tf.keras.optimizers.SGD(learning_rate=lr)
    return net, loss, trainer


def train_batch(net, loss, updater, X, y):
    """One batch of ``d2l.train_epoch_ch3`` (TensorFlow), in training mode.

    ``d2l.train_epoch_ch3`` calls ``net(X)``, which leaves Keras' Dropout layers
    in inference mode; training means ``training=True`` (SPEC M2).
    """
    with tf.GradientTape() as tape:
        y_hat = net(X, training=True)
        l = loss(y, y_hat)
    params = net.trainable_variables
    grads = tape.gradient(l, params)
    updater.apply_gradients(zip(grads, params))
    return float(l)
