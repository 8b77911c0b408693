"""``python -m dropout_ref.conformance.transformer``: print the Transformer dropout-site table."""

from dropout_ref.conformance.transformer import main

main()
