"""Initial parameters exactly as the original JAX/Haiku notebooks drew them.

The four presets' draws are stored in ``original_params/<preset>.npz`` so that loading them needs
numpy only. Any other configuration is drawn on the fly with jax + dm-haiku (the ``original`` extra).

Arrays are keyed by Haiku-style names and kept in Haiku's layout and dtype:
``embed``/``embed_a``/``embed_b`` [p, d] float32, ``hidden``/``hidden_a``/``hidden_b`` [d, n] float64,
``out`` [n, d] float64, ``unembed`` [d, p] float32 (parameter-style) or [width, p] float64 (the
collapsed_out Linear). Linear weights are [in, out], i.e. ``y = x @ w``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path

import numpy as np

from grok_lightning.model import EMBED_MODES, FactoredMLPConfig, fixed_embedding

PARAMS_DIR = Path(__file__).resolve().parent / "original_params"
INSTALL_HINT = "pip install -e '.[original]'"

# Model settings that leave the drawn parameters unchanged; every other field of FactoredMLPConfig
# (a new flag included) decides which stored draw, if any, matches.
_NOT_IN_DRAW = ("activation", "init", "loss_scale")

# preset -> the keyword arguments of load_original_params that reproduce its draw.
ORIGINAL_PRESETS: dict[str, dict] = {
    "main": dict(seed=165, p=67, model=FactoredMLPConfig(d_embed=500, n_neurons=24)),
    "reverse_grokking": dict(seed=68, p=67, model=FactoredMLPConfig(d_embed=5, n_neurons=10)),
    "gen_mem_gen": dict(seed=78, p=67, model=FactoredMLPConfig(d_embed=8, n_neurons=16)),
    "fixed_embed": dict(seed=86, p=67, model=FactoredMLPConfig(d_embed=2, n_neurons=5, embed="fixed")),
}


class MissingExtraError(RuntimeError):
    """Raised when drawing needs jax + dm-haiku and they are not installed."""


class ChecksumError(RuntimeError):
    """Raised when a stored parameter file does not match SHA256SUMS."""


def _draw_key(model: FactoredMLPConfig, seed: int, p: int) -> tuple:
    """Everything that determines a draw, normalised: d_embed is the embedding's real width, and
    freqs count only for the fixed embedding."""
    if model.embed not in EMBED_MODES:
        raise ValueError(f"embed must be one of {EMBED_MODES}, got {model.embed!r}")
    fields = dataclasses.asdict(model)
    for name in _NOT_IN_DRAW:
        fields.pop(name)
    fields["d_embed"] = model.embed_width
    fields["freqs"] = tuple(int(f) for f in model.freqs) if model.embed == "fixed" else ()
    return (int(seed), int(p), *sorted(fields.items()))


def _preset_for(key: tuple) -> str | None:
    for name, preset in ORIGINAL_PRESETS.items():
        if _draw_key(**preset) == key:
            return name
    return None


def _import_jax_haiku():
    try:
        import haiku as hk
        import jax
        import jax.numpy as jnp
    except ImportError as err:  # jax or haiku absent (or blocked)
        raise MissingExtraError(
            "Drawing the original JAX/Haiku initial parameters for a configuration that is not a "
            f"stored preset needs jax and dm-haiku: {INSTALL_HINT}"
        ) from err
    return jax, jnp, hk


class _jax_flags:
    """Set jax config flags for the draw and restore them afterwards (no global side effects)."""

    def __init__(self, jax, **flags):
        self.jax, self.flags, self.saved = jax, flags, {}

    def __enter__(self):
        for name, value in self.flags.items():
            if not hasattr(self.jax.config, name):
                continue  # a jax too old to have threefry_partitionable draws that way anyway
            self.saved[name] = getattr(self.jax.config, name)
            self.jax.config.update(name, value)

    def __exit__(self, *exc):
        for name, value in self.saved.items():
            self.jax.config.update(name, value)


def draw_original_params(*, seed: int, p: int, model: FactoredMLPConfig) -> dict[str, np.ndarray]:
    """Draw with jax + dm-haiku exactly as the original notebooks did (needs the `original` extra)."""
    _draw_key(model, seed, p)  # refuses an unknown embedding before jax is imported
    jax, jnp, hk = _import_jax_haiku()
    p, d, n, embed = int(p), model.embed_width, model.n_neurons, model.embed

    def forward(x):
        # Parameters are created in forward-pass order; that order fixes which key each one gets.
        init = hk.initializers.VarianceScaling(2.0)  # fan_in, truncated normal: std sqrt(2/fan_in)

        def param(name, shape):
            return hk.get_parameter(name, shape, dtype=jnp.float32, init=init)

        if embed == "fixed":
            emb_a = emb_b = emb = jnp.asarray(fixed_embedding(p, model.freqs))
        elif embed == "untied":
            emb = None
            emb_a, emb_b = param("embed_a", [p, d]), param("embed_b", [p, d])
        else:
            emb_a = emb_b = emb = param("embed", [p, d])
        # float64 one-hots make every Linear below float64 (the embedding itself stays float32).
        x_a = jax.nn.one_hot(x[:, 0], p, dtype=jnp.float64) @ emb_a
        x_b = jax.nn.one_hot(x[:, 1], p, dtype=jnp.float64) @ emb_b

        if model.collapsed_hidden:
            h = x_a + x_b
        elif model.tied_hidden:
            hidden = hk.Linear(n, with_bias=False, name="hidden")
            h = hidden(x_a) + hidden(x_b)
        else:
            h_a = hk.Linear(n, with_bias=False, name="hidden_a")(x_a)
            h = h_a + hk.Linear(n, with_bias=False, name="hidden_b")(x_b)
        act = jax.nn.relu(h)  # the activation does not affect the draw

        if not model.collapsed_out:
            y = hk.Linear(d, with_bias=False, name="out")(act)
            unembed = emb.T if model.tied_unembed else param("unembed", [d, p])
            return y @ unembed
        if model.tied_unembed and d == n:  # as the original: logits = act E^T only when d == n
            return act @ emb.T
        return hk.Linear(p, with_bias=False, name="unembed")(act)

    # The original enabled float64. jax >= 0.5 defaults to the partitionable threefry PRNG, which
    # gives different numbers for the same key; False reproduces what jax 0.4.x drew.
    with _jax_flags(jax, jax_enable_x64=True, jax_threefry_partitionable=False):
        _, init_key = jax.random.split(jax.random.PRNGKey(int(seed)))
        pairs = jnp.array([[0, 0], [0, 1], [0, 2]], dtype=jnp.int32)  # only shapes/dtypes matter
        params = hk.transform(forward).init(init_key, pairs)
        # Haiku stores Linears as {"name": {"w": ...}} and get_parameter at top level as {"~": {...}}.
        flat = {}
        for module, values in params.items():
            for key, value in values.items():
                flat[key if module == "~" else module] = np.asarray(value)
    return flat


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_sums() -> dict[str, str]:
    sums = {}
    for line in (PARAMS_DIR / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name.lstrip("*")] = digest
    return sums


def load_preset_params(preset: str) -> dict[str, np.ndarray]:
    """Load a stored preset draw (numpy only), verifying it against SHA256SUMS."""
    path = PARAMS_DIR / f"{preset}.npz"
    expected = _read_sums().get(path.name)
    actual = _sha256(path)
    if expected != actual:
        raise ChecksumError(
            f"{path} has sha256 {actual}, SHA256SUMS says {expected}: the stored initial parameters "
            "are corrupt or were changed; regenerate them with scripts/draw_original_params.py"
        )
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def load_original_params(*, seed: int, p: int, model: FactoredMLPConfig) -> dict[str, np.ndarray]:
    """Stored draw when the settings match a preset, else a fresh draw (needs jax + dm-haiku)."""
    preset = _preset_for(_draw_key(model, seed, p))
    if preset is not None:
        return load_preset_params(preset)
    return draw_original_params(seed=seed, p=p, model=model)


def param_count(params: dict[str, np.ndarray]) -> int:
    return sum(math.prod(v.shape) for v in params.values())
