"""Counts in messages ("1 key", "2 keys"), and others' text as it is shown."""


def noun_for(count: int, noun: str) -> str:
    """`noun` as it goes with `count`: as given for one, with an s for any other count."""
    return noun if count == 1 else noun + "s"


def counted(count: int, noun: str) -> str:
    """`count` and its noun: "1 key", "0 keys", "3 problems"."""
    return "%d %s" % (count, noun_for(count, noun))


def printable(text: str, chars: int, cut: bool = False) -> str:
    """The first `chars` characters of `text`, each that is not printable (a
    newline, a NUL) as "?", and "..." when there was more (or `cut` says so):
    text a peer chose, as it may go into a log line or a database column (a
    newline forges a log line, a NUL cannot be stored on PostgreSQL)."""
    shown = "".join(c if c.isprintable() else "?" for c in text[:chars])
    return shown + "..." if cut or len(text) > chars else shown
