"""python -m grok_lightning.explorer <run or sweep dir>: (re)build its explorer.html."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

from grok_lightning import runs
from grok_lightning.explorer import ExplorerError, is_sweep_dir, write_page_for

USAGE = "usage: python -m grok_lightning.explorer <run dir or sweep dir>   (make explore RUN=<dir>)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["-h"], ["--help"], ["help"]):
        print(USAGE)
        return 0
    if len(argv) != 1:
        print(f"error: one directory expected, {len(argv)} arguments given; {USAGE}", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    try:
        if runs.is_run_dir(directory) or is_sweep_dir(directory):
            import torch

            # One run's tensors are small: more threads only contend (10x slower on a busy 2-core CPU).
            torch.set_num_threads(1)
        path = write_page_for(directory)
    except (ExplorerError, OSError) as exc:  # OSError: e.g. a name too long, a folder not writable
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"explorer -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
