"""The course models on MXNet Gluon (SPEC M, X)."""
