"""SKS set reconciliation ("recon"): the arithmetic underneath the protocol.

`field` holds the prime field SKS works in, its constants, the conversions
between key hashes and field elements, and a node's sample values.
`interpolate` holds polynomials over that field and `reconcile`, which turns
two nodes' sample values into the symmetric difference of their sets (or
reports that the difference is too large to recover at this node).
"""
