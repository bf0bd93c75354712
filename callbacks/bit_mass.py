"""BitMass (sparse parity): the share of |W_input| on the first k bits, the ones the label reads."""

from __future__ import annotations

from omegaconf import OmegaConf

from grok_lightning import figures
from grok_lightning import fourier as fo

from ._base import AnalysisCallback


class BitMass(AnalysisCallback):
    key, prefix = "bit_mass", "bits"

    @property
    def k(self) -> int:
        return int(OmegaConf.select(self.cfg, "data.k", default=3))

    def measure(self, pl_module) -> dict[str, float]:
        W_in = pl_module.model.W_input[:1]
        return {"mass_first_k": fo.first_bits_mass_share(W_in, self.k)[0]}

    def finals(self, pl_module, step: int):
        if not self.steps:
            return {}
        n_bits = pl_module.model.W_input.shape[-2] - 1
        return {
            "bit_mass": figures.bit_mass_curve(
                self.steps, self.series["mass_first_k"], k=self.k, n_bits=n_bits, **self.step_marks(pl_module)
            )
        }

    def summary(self, pl_module) -> dict:
        return {"bit_mass_first_k": round(self.series["mass_first_k"][-1], 4)} if self.steps else {}
