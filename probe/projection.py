"""Low-dimensional views of embeddings: PCA fitted on a reference set (the authors' Fig 1 projections).

Fig 1 shows look-alike images with different embeddings by the coefficients of the first principal
components; PCA is fitted on a reference set's embeddings, then originals and matched images are
projected onto it. The first two coefficients also give the 2-D scatter of sources, targets and
matched images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from probe.errors import ProbeError


@dataclass(frozen=True)
class PCA:
    """Mean and principal directions of reference embeddings (float64)."""

    mean: torch.Tensor                      # (m,)
    components: torch.Tensor                # (k, m), orthonormal rows, largest variance first
    explained_variance_ratio: torch.Tensor  # (k,), share of the reference set's total variance

    def transform(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Coefficients (N, k) of embeddings (N, m) on the components."""
        if embeddings.shape[-1] != self.mean.shape[0]:
            raise ProbeError(f"embeddings have dimension {embeddings.shape[-1]}, the PCA was fitted on "
                             f"{self.mean.shape[0]}: use the same model for both")
        return (embeddings.detach().double().cpu() - self.mean) @ self.components.T


def fit_pca(embeddings: torch.Tensor, k: int = 6) -> PCA:
    """PCA of reference embeddings (N, m) by SVD of the centred data, keeping k components.

    Each component's sign is fixed so that its largest-magnitude loading is positive (SVD alone leaves
    the sign arbitrary), so the same data always gives the same bars. Needs k <= min(N - 1, m).
    """
    x = embeddings.detach().double().cpu()
    if x.dim() != 2:
        raise ProbeError(f"expected embeddings of shape (N, m), got {tuple(x.shape)}")
    n, m = x.shape
    if not 1 <= k <= min(n - 1, m):
        raise ProbeError(f"PCA with k={k} components needs more than k reference embeddings and k <= "
                         f"their dimension; got {n} embeddings of dimension {m}")
    mean = x.mean(dim=0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
    components = vh[:k]
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    variance = s.pow(2)
    if variance.sum() == 0:
        raise ProbeError("the reference embeddings are all identical: PCA has no direction to find")
    return PCA(mean, components * signs, variance[:k] / variance.sum())
