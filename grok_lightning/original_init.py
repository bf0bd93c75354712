"""Initial parameters exactly as the original JAX/Haiku notebooks drew them.

The four presets' draws are stored in ``original_params/<preset>.npz`` so that loading them needs
numpy only. Any other configuration is drawn on the fly with jax + dm-haiku (the ``original`` extra).

Arrays are keyed by Haiku-style names and kept in Haiku's layout and dtype:
``embed``/``embed_a``/``embed_b`` [p, d] float32, ``hidden``/``hidden_a``/``hidden_b`` [d, n] float64,
``out`` [n, d] float64, ``unembed`` [d, p] float32 (parameter-style) or [width, p] float64 (the
collapsed_out Linear). Linear weights are [in, out], i.e. ``y = x @ w``.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

PARAMS_DIR = Path(__file__).resolve().parent / "original_params"
INSTALL_HINT = "pip install -e '.[original]'"

# Everything that determines a draw. Data-side fields (train_fraction, weight decay, lr) do not.
_DEFAULTS = dict(
    embed="tied",
    tied_hidden=True,
    collapsed_hidden=False,
    collapsed_out=False,
    fixed_embed=False,
    freqs=(1,),
)

ORIGINAL_PRESETS: dict[str, dict] = {
    "main": dict(_DEFAULTS, seed=165, p=67, d_embed=500, n_neurons=24),
    "reverse_grokking": dict(_DEFAULTS, seed=68, p=67, d_embed=5, n_neurons=10),
    "gen_mem_gen": dict(_DEFAULTS, seed=78, p=67, d_embed=8, n_neurons=16),
    # d_embed = 2 * len(freqs): the fixed cos/sin embedding.
    "fixed_embed": dict(_DEFAULTS, seed=86, p=67, d_embed=2, n_neurons=5, fixed_embed=True),
}

EMBED_MODES = ("tied", "input_tied", "untied")


class MissingExtraError(RuntimeError):
    """Raised when drawing needs jax + dm-haiku and they are not installed."""


class ChecksumError(RuntimeError):
    """Raised when a stored parameter file does not match SHA256SUMS."""


def fixed_embedding(p: int, freqs=(1,)) -> np.ndarray:
    """[p, 2*len(freqs)] float64: columns cos(2 pi f n / p), sin(2 pi f n / p), unit L2 norm each."""
    n = np.arange(p)
    cols = []
    for f in freqs:
        angle = 2 * np.pi * f * n / p
        cols += [np.cos(angle), np.sin(angle)]
    emb = np.stack(cols, axis=1)
    return emb / np.linalg.norm(emb, axis=0, keepdims=True)


def _config(seed, p, d_embed, n_neurons, embed, tied_hidden, collapsed_hidden, collapsed_out,
            fixed_embed, freqs) -> dict:
    if embed not in EMBED_MODES:
        raise ValueError(f"embed must be one of {EMBED_MODES}, got {embed!r}")
    freqs = tuple(int(f) for f in freqs) if fixed_embed else ()  # freqs only matter when fixed
    if fixed_embed and d_embed != 2 * len(freqs):
        raise ValueError(f"fixed_embed needs d_embed == 2 * len(freqs) = {2 * len(freqs)}, got {d_embed}")
    return dict(seed=int(seed), p=int(p), d_embed=int(d_embed), n_neurons=int(n_neurons),
                embed=embed, tied_hidden=bool(tied_hidden), collapsed_hidden=bool(collapsed_hidden),
                collapsed_out=bool(collapsed_out), fixed_embed=bool(fixed_embed), freqs=freqs)


def _preset_for(cfg: dict) -> str | None:
    for name, preset in ORIGINAL_PRESETS.items():
        if _config(**preset) == cfg:
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


def draw_original_params(*, seed, p, d_embed, n_neurons, embed="tied", tied_hidden=True,
                         collapsed_hidden=False, collapsed_out=False, fixed_embed=False,
                         freqs=(1,)) -> dict[str, np.ndarray]:
    """Draw with jax + dm-haiku exactly as the original notebooks did (needs the `original` extra)."""
    cfg = _config(seed, p, d_embed, n_neurons, embed, tied_hidden, collapsed_hidden,
                  collapsed_out, fixed_embed, freqs)
    jax, jnp, hk = _import_jax_haiku()
    p, d, n = cfg["p"], cfg["d_embed"], cfg["n_neurons"]

    def forward(x):
        # Parameters are created in forward-pass order; that order fixes which key each one gets.
        init = hk.initializers.VarianceScaling(2.0)  # fan_in, truncated normal: std sqrt(2/fan_in)

        def param(name, shape):
            return hk.get_parameter(name, shape, dtype=jnp.float32, init=init)

        if cfg["fixed_embed"]:
            emb_a = emb_b = emb = jnp.asarray(fixed_embedding(p, cfg["freqs"]))
        elif embed == "untied":
            emb = None
            emb_a, emb_b = param("embed_a", [p, d]), param("embed_b", [p, d])
        else:
            emb_a = emb_b = emb = param("embed", [p, d])
        # float64 one-hots make every Linear below float64 (the embedding itself stays float32).
        x_a = jax.nn.one_hot(x[:, 0], p, dtype=jnp.float64) @ emb_a
        x_b = jax.nn.one_hot(x[:, 1], p, dtype=jnp.float64) @ emb_b

        if cfg["collapsed_hidden"]:
            h = x_a + x_b
        elif cfg["tied_hidden"]:
            hidden = hk.Linear(n, with_bias=False, name="hidden")
            h = hidden(x_a) + hidden(x_b)
        else:
            h = (hk.Linear(n, with_bias=False, name="hidden_a")(x_a)
                 + hk.Linear(n, with_bias=False, name="hidden_b")(x_b))
        act = jax.nn.relu(h)  # the activation does not affect the draw

        if not cfg["collapsed_out"]:
            y = hk.Linear(d, with_bias=False, name="out")(act)
            unembed = emb.T if embed == "tied" else param("unembed", [d, p])
            return y @ unembed
        if embed == "tied" and d == n:  # as the original: logits = act E^T only when d == n
            return act @ emb.T
        return hk.Linear(p, with_bias=False, name="unembed")(act)

    # The original enabled float64. jax >= 0.5 defaults to the partitionable threefry PRNG, which
    # gives different numbers for the same key; False reproduces what jax 0.4.x drew.
    with _jax_flags(jax, jax_enable_x64=True, jax_threefry_partitionable=False):
        _, init_key = jax.random.split(jax.random.PRNGKey(cfg["seed"]))
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


def load_original_params(*, seed, p, d_embed, n_neurons, embed="tied", tied_hidden=True,
                         collapsed_hidden=False, collapsed_out=False, fixed_embed=False,
                         freqs=(1,)) -> dict[str, np.ndarray]:
    """Stored draw when the arguments match a preset, else a fresh draw (needs jax + dm-haiku)."""
    cfg = _config(seed, p, d_embed, n_neurons, embed, tied_hidden, collapsed_hidden,
                  collapsed_out, fixed_embed, freqs)
    preset = _preset_for(cfg)
    if preset is not None:
        return load_preset_params(preset)
    return draw_original_params(**cfg)


def param_count(params: dict[str, np.ndarray]) -> int:
    return sum(math.prod(v.shape) for v in params.values())
