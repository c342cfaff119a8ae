"""SKS set reconciliation ("recon").

The arithmetic: `field` holds the prime field SKS works in, its constants,
the conversions between key hashes and field elements, and a node's sample
values; `interpolate` holds polynomials over that field and `reconcile`,
which turns two nodes' sample values into the symmetric difference of their
sets (or reports that the difference is too large to recover at this node).

The protocol, sans I/O: `wire` (the messages and their bytes) and `session`
(the requester's and the answerer's state machines).  The I/O at the edges:
`net` (a session over a socket), `rounds` (a round with a peer: handshake,
session, fetch, record), `service` (cksd's recon port and its gossip),
`hashquery` and `fetch` (getting the keys a round found missing, by hash).
"""
