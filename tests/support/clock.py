"""A clock that tests move by hand, for code that takes `clock=time.monotonic`."""


class Clock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
