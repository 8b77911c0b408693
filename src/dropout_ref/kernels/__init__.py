"""Compiled CPU kernels shared by backends (numba): the Philox mask and the fused dropout."""
