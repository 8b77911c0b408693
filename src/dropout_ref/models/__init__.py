"""Our models: the course MLP (SPEC M) and the GPT (SPEC X), one module per framework."""
