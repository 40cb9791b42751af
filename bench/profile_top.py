"""Summarize a `py-spy record --format raw` file: the top functions by own (leaf) samples and by
total (inclusive) samples, as % of all samples.

    python -m bench.profile_top /tmp/prof/W1-run1.txt [--top 15]
"""

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[1])  # frames of our own code print repo-relative
_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(.*?) \((.*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    func, path = m.groups()
    for marker in ("site-packages/", f"{REPO}/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


def summarize(path: str, top: int) -> str:
    own: Counter = Counter()
    total: Counter = Counter()
    samples = 0
    with open(path) as f:
        for row in f:
            m = _LINE.match(row.rstrip("\n"))
            if not m:
                continue
            stack, count = m.group(1), int(m.group(2))
            frames = [frame_name(x) for x in stack.split(";")]
            frames = [x for x in frames if not x.startswith(("thread ", "process "))]
            if not frames:
                continue
            samples += count
            own[frames[-1]] += count
            for name in set(frames):
                total[name] += count
    out = [f"{path}: {samples} samples", f"top {top} by own samples:"]
    out += [f"  {100 * c / samples:5.1f}%  {name}" for name, c in own.most_common(top)]
    out.append(f"top {top} by total (inclusive) samples:")
    out += [f"  {100 * c / samples:5.1f}%  {name}" for name, c in total.most_common(top)]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_top")
    p.add_argument("files", nargs="+")
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)
    for path in args.files:
        print(summarize(path, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
