"""The torch fast paths: custom operators, the Triton kernel, the compiled CPU passes."""
