"""The course MLP as a ``keras.Model`` subclass (SPEC M1-M5).

Dropout follows Keras' ``training`` argument: ``model(X, training=True)``
(M2). The weights are Keras variables named and laid out as in
:mod:`dropout_ref.models.mlp_spec` (``H = X @ W + b``).
"""



from __future__ import annotations

# Keras 3 itself, not `tf.keras`: Hugging Face's TF models set TF_USE_LEGACY_KERAS=1 on import,
# after which `tf.keras` is Keras 2 (tf_keras) and a model built on it is no Keras 3 model.
import keras
import numpy as np
import tensorflow as tf
from keras.saving import register_keras_serializable

from dropout_ref.models.mlp_spec import (
    DROPOUT_OFFSETS,
    WEIGHT_NAMES,
    MLPSpec,
    SpecRates,
    flat_input_shape,
    resolve_weights,
    validate_weights,
)
from dropout_ref.tensorflow import dropout_layer


@register_keras_serializable(package="dropout_ref")
class MLP(SpecRates, keras.Model):
    """Flatten → Dense → ReLU → dropout1 → Dense → ReLU → dropout2 → Dense (SPEC M1).

    Parameters
    ----------
    num_inputs, num_outputs, num_hiddens1, num_hiddens2 : int
        Layer sizes.
    dropout1, dropout2 : float
        Drop probabilities after the first and second hidden ReLU.
    weights : dict of str to numpy.ndarray, optional
        Initial weights in the neutral layout of :mod:`dropout_ref.models.mlp_spec`;
        by default N(0, 0.01²) weights and zero biases drawn from ``rng``.
    rng : numpy.random.Generator or int, optional
        Source of the default init.

    """

    def __init__(
        self,
        num_inputs: int = 784,
        num_outputs: int = 10,
        num_hiddens1: int = 256,
        num_hiddens2: int = 256,
        dropout1: float = 0.2,
        dropout2: float = 0.5,
        *,
        weights: dict[str, np.ndarray] | None = None,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__()
        self.spec = MLPSpec(num_inputs, num_hiddens1, num_hiddens2, num_outputs, dropout1, dropout2)
        initial = resolve_weights(self.spec, weights, rng)
        self.weight_vars = {
            name: self.add_weight(
                name=name,
                shape=value.shape,
                dtype="float32",
                initializer=keras.initializers.Constant(value),
                trainable=True,
            )
            for name, value in initial.items()
        }
        # The initializer copies lazily in some Keras versions: assign to be sure.
        for name, value in initial.items():
            self.weight_vars[name].assign(value)
        # Every variable exists now: saving needs no call on data first.
        self.built = True

    def get_config(self) -> dict[str, object]:
        """Return the sizes and rates, from which :meth:`from_config` rebuilds the model.

        Registered with Keras (``dropout_ref>MLP``), so ``model.save("m.keras")`` then
        ``keras.models.load_model("m.keras")`` gives back an MLP with its sizes, rates and
        weights (the weights travel in the file's variables, not in the config). The
        loading process must have imported the class, e.g. ``from dropout_ref.tensorflow
        import MLP`` (the adapter resolves its models lazily, so importing the adapter
        alone does not register them).
        """
        spec = self.spec
        return {
            "num_inputs": spec.num_inputs,
            "num_outputs": spec.num_outputs,
            "num_hiddens1": spec.num_hiddens1,
            "num_hiddens2": spec.num_hiddens2,
            "dropout1": spec.dropout1,
            "dropout2": spec.dropout2,
        }

    @classmethod
    def from_config(cls, config: dict[str, object]) -> MLP:
        """Build an MLP of the config's sizes and rates (weights are loaded afterwards)."""
        return cls(**config)

    def get_weights(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        """Return copies of the weights in the neutral layout (SPEC M5).

        Unlike ``keras.Model.get_weights`` (a list), this returns the
        framework-neutral dict shared by every backend.
        """
        return {name: np.array(self.weight_vars[name].numpy()) for name in WEIGHT_NAMES}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:  # type: ignore[override]
        """Load weights in the neutral layout (SPEC M5); they are validated first."""
        for name, value in validate_weights(weights, self.spec).items():
            self.weight_vars[name].assign(value)

    def call(self, X, training=None, mask_seed: int | None = None, rates=None):
        """Return the logits of ``X``; dropout after each hidden ReLU only when ``training``.

        Parameters
        ----------
        X : tf.Tensor
            A batch whose trailing dimensions hold ``num_inputs`` elements.
        training : bool, optional
            Keras' training flag (M2); dropout only when truthy.
        mask_seed : int, optional
            Portable-mask seed for this step (SPEC P); ``None`` draws from
            TensorFlow's global generator.
        rates : pair of float or 0-d tensors, optional
            The two hidden dropouts' rates for this call instead of ``dropout1``/
            ``dropout2``: a schedule's rates (SPEC S3), runtime tensors in compiled steps (S1).

        """
        v = self.weight_vars
        X = tf.cast(tf.convert_to_tensor(X), tf.float32)
        if X.shape.is_fully_defined():
            X = tf.reshape(X, flat_input_shape(X.shape, self.spec.num_inputs))
        else:  # traced with an unknown batch size: checked at run time by reshape
            X = tf.reshape(X, (-1, self.spec.num_inputs))
        rate1, rate2 = (self.dropout1, self.dropout2) if rates is None else rates
        H1 = tf.nn.relu(tf.matmul(X, v["W1"]) + v["b1"])
        if training:
            H1 = dropout_layer(H1, rate1, seed=mask_seed, offset=DROPOUT_OFFSETS[0])
        H2 = tf.nn.relu(tf.matmul(H1, v["W2"]) + v["b2"])
        if training:
            H2 = dropout_layer(H2, rate2, seed=mask_seed, offset=DROPOUT_OFFSETS[1])
        return tf.matmul(H2, v["W3"]) + v["b3"]
