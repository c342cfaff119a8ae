"""Command-line tools: one module per program, shared plumbing in common."""
