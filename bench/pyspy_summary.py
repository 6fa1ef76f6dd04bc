"""Summarise a `py-spy record -f raw` file: share of samples per function
(inclusive), idle waits left out. `python -m bench.pyspy_summary FILE [N]`."""

from __future__ import annotations

import sys
from collections import Counter

IDLE = ("Condition.wait", "Queue.get", "EpollSelector.select", "_worker (")


def summarise(path: str, top: int = 30) -> str:
    inclusive: Counter[str] = Counter()
    total = 0
    with open(path) as raw:
        lines = raw.read().splitlines()
    for line in lines:
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any(frames[-1].startswith(i) for i in IDLE):
            continue
        n = int(count)
        total += n
        seen = set()
        for frame in frames:
            name = frame.split(" (")[0]
            where = frame.split(" (")[1].split(":")[0].split("/")[-1] if " (" in frame else ""
            key = f"{name} ({where})"
            if key not in seen:
                inclusive[key] += n
                seen.add(key)
    lines = [f"{total} busy samples"]
    lines += [f"{n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarise(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30))
