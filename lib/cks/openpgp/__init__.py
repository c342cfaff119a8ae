"""The OpenPGP layer: armor, packets, keys, merge, SKS hash (standard library only)."""
