"""Sharing a serving process's room among its clients: its open connections
and the memory of request bodies still arriving.  No I/O: server.py counts
here what each client holds, asks whose turn it is to give some back, and
closes what it is told.

A client is its address, an IPv6 client its /64 (ratelimit.bucket_of), as
for the rate limits.  When room runs out, the client that would hold the
most gives it back: a newcomer that would itself hold the most (the most on
a tie) gives back its own or is refused, any other newcomer takes room from
the fullest client.  A new connection with nothing of its own to give back
takes the room of one waiting for a request, of a client that holds as many
(server.py _room_for).  So neither one address with many connections or
unfinished uploads nor many addresses with one connection each can lock the
others out.
"""

from __future__ import annotations

from typing import Dict


class Shares:
    """What each client holds of one resource (connections, or bytes of
    bodies), and the total."""

    def __init__(self) -> None:
        self._held: Dict[str, int] = {}
        self.total = 0

    def of(self, client: str) -> int:
        return self._held.get(client, 0)

    def take(self, client: str, amount: int = 1) -> None:
        self._held[client] = self._held.get(client, 0) + amount
        self.total += amount

    def give_back(self, client: str, amount: int = 1) -> None:
        left = self._held.get(client, 0) - amount
        if left > 0:
            self._held[client] = left
        else:
            self._held.pop(client, None)
        self.total -= amount

    def fullest(self, newcomer: str, amount: int = 1) -> str:
        """The client that would hold the most once `newcomer` took `amount`
        more: the newcomer itself on a tie."""
        wanted = self.of(newcomer) + amount
        fullest = max(self._held, key=self._held.__getitem__, default=newcomer)
        return fullest if self._held.get(fullest, 0) > wanted else newcomer
