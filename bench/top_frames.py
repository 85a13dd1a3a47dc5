"""Summarise a py-spy raw (collapsed stacks) profile: where the samples land, own time and inclusive."""

from __future__ import annotations

import collections
import sys


def main(path: str, limit: int = 30, prefix: str = "rcsgate") -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            n = int(count)
            total += n
            frames = stack.split(";")
            own[frames[-1]] += n
            for frame in set(frames):
                if prefix in frame:
                    inclusive[frame] += n
    print(f"{total} samples\n-- own time")
    for frame, n in own.most_common(limit):
        print(f"{100 * n / total:5.1f}%  {frame}")
    print(f"-- inclusive ({prefix} frames)")
    for frame, n in inclusive.most_common(limit):
        print(f"{100 * n / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30)
