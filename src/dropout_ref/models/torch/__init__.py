"""Our models (the course MLP, the GPT) in the torch backend."""
