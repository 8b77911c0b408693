"""The course's concise (high-level API) dropout MLPs, for the portable_masks tests (SPEC P8, M6).

Provenance. The seed document (``shared/seeds/000_*.txt``, a copy of the Chinese
D2L dropout chapter) prints the from-scratch versions (``dropout_layer`` from
``torch.rand`` / ``tf.random.uniform`` / ``np.random.uniform`` and hand-written
``Net`` classes) and the training set-up (``lr = 0.5``, ``batch_size = 256``,
``nn.CrossEntropyLoss(reduction='none')`` with ``torch.optim.SGD``,
``SparseCategoricalCrossentropy(from_logits=True)`` with ``tf.keras.optimizers.SGD``,
``gluon.loss.SoftmaxCrossEntropyLoss`` with Gluon's SGD), but not the concise
implementations themselves. The modules here write the chapter's concise MLP
(Flatten, Linear 256, ReLU, Dropout 0.2, Linear 256, ReLU, Dropout 0.5,
Linear 10; weights N(0, 0.01**2)) with each framework's own layers and that
training set-up, one batch of ``d2l.train_epoch_ch3`` as ``train_batch``; they
use the framework's dropout layers and nothing of dropout_ref.

Not interceptable, by design: the from-scratch versions of the seed draw their
masks from ``torch.rand`` etc. (hand-written dropout is not the framework's
dropout); see docs/port-check.md.
"""
