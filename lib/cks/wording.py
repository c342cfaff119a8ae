"""Counts in messages: "1 key", "2 keys"."""


def noun_for(count: int, noun: str) -> str:
    """`noun` as it goes with `count`: as given for one, with an s for any other count."""
    return noun if count == 1 else noun + "s"


def counted(count: int, noun: str) -> str:
    """`count` and its noun: "1 key", "0 keys", "3 problems"."""
    return "%d %s" % (count, noun_for(count, noun))
