"""Attention-dropout audit: the neutral probe (:mod:`.audit`) and one module per framework."""
