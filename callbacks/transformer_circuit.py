"""TransformerCircuit (model.kind=transformer): what Nanda et al. 2023 watch in their one-layer
transformer. Scalars over training: the embedding's Fourier Gini and key-frequency count, the
restricted loss (logits kept to the key frequencies, all pairs) and the excluded loss (key
frequencies removed, training pairs), with the paper's projection (grok_lightning.fourier.embedding).
At the end: the progress curves, the embedding's spectrum, attention and neuron clusters.

The key frequencies are the embedding's at the step measured (no later step is known during
training); the paper's analysis uses the final model's for every step."""

from __future__ import annotations

import torch

from grok_lightning.figures import transformer_views as views
from grok_lightning.fourier import embedding as em

from ._base import AnalysisCallback
from .progress_measures import progress_figure


class TransformerCircuit(AnalysisCallback):
    """Installed only where the config's model is the transformer (its analysis, "transformer")."""

    key, prefix = "transformer_circuit", "circuit"
    _end_clusters = None  # (frequency, share) per neuron, from the end-of-run figures

    def _model_0(self, pl_module):
        model = pl_module.model
        tokens = model.all_pairs(device=pl_module.device)[0]  # [K, p*p, 3], a-major
        return model, tokens[:1]

    def measure(self, pl_module) -> dict[str, float]:
        if not pl_module.data:
            return {}
        model, tokens = self._model_0(pl_module)
        p = model.p
        logits_all = model(tokens).reshape(1, p, p, p)
        W_E = model.embedding()[:1].double()
        key_mask = em.embedding_key_frequency_mask(W_E)
        (train_tokens,), _ = pl_module.data["train"]
        values = em.paper_progress_measures(
            logits_all.double(),
            key_mask,
            train_tokens[:1, :, 0],
            train_tokens[:1, :, 1],
            loss_fn=pl_module.objective.loss,
        )
        values["embed_gini"] = em.embedding_gini(W_E)
        values["n_key_freqs"] = key_mask.sum(-1)
        return {name: float(v[0]) for name, v in values.items()}

    def finals(self, pl_module, step: int):
        model, tokens = self._model_0(pl_module)
        W_E = model.embedding()[:1].double()
        norms = em.embedding_frequency_norms(W_E)[0].cpu().numpy()
        keys = self._key_frequencies(W_E)
        out = {
            "embedding_spectrum": views.embedding_spectrum(
                norms, keys, self.steps, self.series.get("embed_gini", []), step=step
            )
        }
        p = model.p
        att = model.attention_patterns(tokens)[0, :, :, -1, 0]  # [heads, p*p]: "=" attending to a
        out["attention"] = views.attention_to_a(att.reshape(-1, p, p).cpu().numpy(), step=step)
        freqs, frac = self._end_clusters = self._clusters(model, tokens)
        out["neuron_clusters"] = views.neuron_clusters(
            freqs.cpu().numpy(),
            frac.cpu().numpy(),
            em.NEURON_CLUSTER_THRESHOLD,
            n_freq=(p - 1) // 2,
            step=step,
        )
        if self.steps:
            out["progress"] = progress_figure(self, pl_module)
        return out

    @staticmethod
    def _key_frequencies(W_E) -> list[int]:
        mask = em.embedding_key_frequency_mask(W_E)[0]
        return [int(i) + 1 for i in torch.nonzero(mask).flatten()]

    @staticmethod
    def _clusters(model, tokens):
        p = model.p
        acts = model.neuron_activations(tokens)[0].double().reshape(p, p, -1)
        return em.neuron_frequency_clusters(acts)

    def summary(self, pl_module) -> dict:
        model, tokens = self._model_0(pl_module)
        # the end-of-run figures, drawn just before, measured the clusters of these same weights
        freqs, frac = self._end_clusters or self._clusters(model, tokens)
        clustered = freqs[frac >= em.NEURON_CLUSTER_THRESHOLD].tolist()
        sizes = {int(f): clustered.count(f) for f in sorted(set(clustered))}
        out = {
            "key_frequencies": self._key_frequencies(model.embedding()[:1].double()),
            "neuron_clusters": sizes,
            "neurons_clustered": len(clustered),
        }
        if self.steps:
            out["circuit"] = {name: float(f"{v[-1]:.4g}") for name, v in self.series.items()}
        return out
