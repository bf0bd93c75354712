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

DTYPES = {"f2": "<f2", "f4": "<f4", "f8": "<f8", "i2": "<i2", "i4": "<i4"}


def packed(values: Any, dtype: str = "f4") -> dict:
    """An array as {dtype, shape, b64}: little-endian bytes in base64, decoded by the page's JS.
    f2 (float16) halves the weight frames; losses keep f4 or f8 (f2 cannot hold 1e-8)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
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
