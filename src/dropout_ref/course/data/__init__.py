"""Data of the course: images for the MLP, text for the GPT (numpy only, no framework)."""
