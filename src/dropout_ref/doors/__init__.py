"""Doors of ``portable_masks`` that span frameworks (SPEC P8).

A library that runs on several frameworks (Keras 3 on TensorFlow, JAX or PyTorch)
has its dropouts written once; its doors are written once here too, parameterized
by the backend, and each backend's ``dropout_ref.<backend>.intercept`` adds them to
its own context and door table. Modules here import their library lazily, inside
the functions that build the patches, and import no adapter: the adapter passes
its ``dropout_layer`` in.

- :mod:`dropout_ref.doors.keras3`: Keras 3 on whichever backend Keras picked;
- :mod:`dropout_ref.doors.tf_keras`: Keras 2 (``tf_keras``), in TensorFlow's context.
"""
