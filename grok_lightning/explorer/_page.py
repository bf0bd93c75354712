"""The page itself: arrays encoded compactly, data and code inlined into one HTML file, written
atomically. A page needs no server and fetches nothing: open it from file:// offline."""

from __future__ import annotations

import base64
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from grok_lightning import runs

from .names import PAGE_NAME

DTYPES = {"i1": "i1", "f2": "<f2", "f4": "<f4", "f8": "<f8", "i2": "<i2", "i4": "<i4"}


def packed(values: Any, dtype: str = "f4") -> dict:
    """An array as {dtype, shape, b64}: little-endian bytes in base64, decoded by the page's JS.
    f2 (float16) halves the weight frames; losses keep f4 or f8 (f2 cannot hold 1e-8). q1: int8
    with one scale per leading index (a frame), for heatmaps: 127 levels a side, as many as the
    page's 256-colour maps show, at half f2's bytes."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    if dtype == "q1":
        arr = np.asarray(values, dtype=np.float32)
        scale = np.abs(arr.reshape(len(arr), -1)).max(axis=1) if arr.size else np.zeros(len(arr))
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0).astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged frame: inf and nan, clipped
            q = np.rint(np.nan_to_num(arr / scale.reshape((-1,) + (1,) * (arr.ndim - 1))) * 127)
        out = packed(np.clip(q, -127, 127).astype(np.int8), "i1")
        return {**out, "dtype": "q1", "scale": [float(x) for x in scale]}
    arr = np.ascontiguousarray(np.asarray(values, dtype=DTYPES[dtype]))
    return {"dtype": dtype, "shape": list(arr.shape), "b64": base64.b64encode(arr.tobytes()).decode("ascii")}


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _json_for_script(payload: dict) -> str:
    # Inside <script> a literal "</script>" or "<!--" would end or confuse the block: escape every "<".
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def render_html(payload: dict) -> str:
    html = _asset("page.html")
    title = str(payload.get("title", "explorer")).replace("&", "&amp;").replace("<", "&lt;")
    parts = {
        "TITLE": title,
        "STYLE": _asset("explorer.css"),
        "DATA": _json_for_script(payload),
        "SCRIPT": _asset("explorer.js"),
    }
    # One pass: text put in (the data, the code) is never searched for markers again.
    return re.sub(r"/\*(TITLE|STYLE|DATA|SCRIPT)\*/", lambda m: parts[m.group(1)], html)


def write_page(directory: Path, payload: dict) -> Path:
    path = Path(directory) / PAGE_NAME
    runs.atomic_write_text(path, render_html(payload))
    return path


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN / inf: such scalars travel as null."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None
