"""Port checks: run two models (ours or yours, any frameworks) side by side in training mode."""
