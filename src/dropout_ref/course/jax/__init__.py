"""The course models on JAX / Flax NNX (SPEC M, X)."""
