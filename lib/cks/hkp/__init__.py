"""HKP: request parsing, lookups and output (machine-readable, HTML, JSON)."""
