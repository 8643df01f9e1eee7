"""A pass clock for tests: it runs each pass and reads its time from a list, so a test knows
exactly what every timing loop (torch eager, ONNX Runtime, the reference ratio) was given."""

from __future__ import annotations


class ScriptedClock:
    """A pass clock that reads its times from a list: the seam a device plugs into."""

    name = "scripted"

    def __init__(self, times):
        self.times, self.calls = list(times), 0

    def time_pass(self, run, *args):
        run(*args)
        self.calls += 1
        return self.times.pop(0)
