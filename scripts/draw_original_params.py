"""Draw the original JAX/Haiku initial parameters of the presets and store them for numpy-only loading.

Usage: python scripts/draw_original_params.py [--out DIR] [PRESET ...]   (needs jax + dm-haiku)

Writes <DIR>/<preset>.npz and rewrites <DIR>/SHA256SUMS (default DIR: grok_lightning/original_params).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from grok_lightning.original_init import ORIGINAL_PRESETS, PARAMS_DIR, draw_original_params  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "presets", nargs="*", metavar="PRESET", help=f"any of {', '.join(ORIGINAL_PRESETS)} (default: all)"
    )
    parser.add_argument("--out", type=Path, default=PARAMS_DIR)
    args = parser.parse_args(argv)
    unknown = set(args.presets) - set(ORIGINAL_PRESETS)
    if unknown:
        parser.error(f"unknown preset(s) {sorted(unknown)}; choose from {list(ORIGINAL_PRESETS)}")
    args.out.mkdir(parents=True, exist_ok=True)

    for preset in args.presets or ORIGINAL_PRESETS:
        params = draw_original_params(**ORIGINAL_PRESETS[preset])
        np.savez_compressed(args.out / f"{preset}.npz", **params)
        shapes = ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in params.items())
        print(f"{preset}: {shapes}")

    # Checksums of every stored file, not only the ones redrawn now.
    lines = [
        f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}" for f in sorted(args.out.glob("*.npz"))
    ]
    (args.out / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'SHA256SUMS'}")


if __name__ == "__main__":
    main()
