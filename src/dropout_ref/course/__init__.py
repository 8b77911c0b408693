"""The course: training steps, training loops and data; per framework in ``course/<backend>/``."""
