"""Per-model losses and accuracies: logits [K, N, ...] -> one number per model [K]. Pure torch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import binary_accuracy, multiclass_accuracy


@dataclass(frozen=True)
class Multiclass:
    """Cross-entropy over n_classes. scale 1/n_classes reproduces the original's mean over batch x
    classes (the scale the outcome thresholds are written on); scale 1 is plain CE."""

    n_classes: int
    scale: float = 1.0

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        K, N, C = logits.shape
        ce = F.cross_entropy(logits.reshape(K * N, C), targets.reshape(K * N), reduction="none")
        return ce.view(K, N).mean(dim=1) * self.scale

    def accuracy(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return multiclass_accuracy(
            logits.argmax(-1),
            targets,
            num_classes=self.n_classes,
            average="micro",
            multidim_average="samplewise",
            validate_args=False,  # the checks cost 10x the computation
        )


@dataclass(frozen=True)
class Binary:
    """One logit per example, sigmoid + binary cross-entropy."""

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none").mean(
            dim=1
        )

    def accuracy(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        predicted = (logits > 0).long()
        acc = binary_accuracy(predicted, targets, multidim_average="samplewise", validate_args=False)
        return acc.reshape(logits.shape[0])  # torchmetrics squeezes K = 1 to a scalar
