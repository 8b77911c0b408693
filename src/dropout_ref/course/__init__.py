"""The course: models, training steps, data and tools; per framework in ``course/<backend>/``."""
