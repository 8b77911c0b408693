"""The course's models and training steps in the numpy backend."""
