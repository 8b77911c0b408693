"""The course: its models, training steps and tools, per framework in ``course/<backend>/``."""
