"""Matplotlib figure builders shared by the CLI, repro and the app.
Every builder returns (figure, data): the numbers behind the picture, saved as JSON beside the PNG
by `probe.results.save_figure`."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


# --- zero-shot matrices, systematic evaluation, PCA projections (probe.zeroshot, .evaluate, .projection)


def _annotated_heatmap(ax, values, rows, cols, vmin: float, vmax: float, cmap: str, fmt: str):
    """A matrix with each cell's value written in it; NaN cells grey with a dash. Returns the image."""
    array = np.asarray(values, dtype=float)
    colormap = plt.get_cmap(cmap).with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(array), cmap=colormap, vmin=vmin, vmax=vmax, aspect="auto")
    size = max(5.0, min(10.0, 100.0 / max(array.shape)))
    for (i, j), value in np.ndenumerate(array):
        dark = not np.isnan(value) and (value - vmin) / (vmax - vmin) > 0.6
        ax.text(j, i, "-" if np.isnan(value) else fmt.format(value), ha="center", va="center",
                fontsize=size, color="white" if dark else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    return image


def _matrix_size(n_rows: int, n_cols: int) -> tuple[float, float]:
    return min(3.0 + 0.75 * n_cols, 18.0), min(1.8 + 0.45 * n_rows, 16.0)


def vision_text_figure(probabilities, image_labels, class_labels, title: str = "vision x text probabilities"):
    """The paper's zero-shot matrix (Fig 1 d/h): rows images, columns class texts, each row sums to 1.
    Each row's most probable class is outlined."""
    from matplotlib.patches import Rectangle

    probs = np.asarray(probabilities, dtype=float)
    fig, ax = plt.subplots(figsize=_matrix_size(*probs.shape))
    image = _annotated_heatmap(ax, probs, image_labels, class_labels, 0.0, 1.0, "Blues", "{:.2f}")
    for i, j in enumerate(probs.argmax(axis=1)):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="crimson", linewidth=2))
    ax.set_xlabel("class text")
    ax.set_ylabel("image")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="probability", fraction=0.046, pad=0.04)
    data = {"title": title, "images": list(image_labels), "classes": list(class_labels),
            "probabilities": probs.tolist(),
            "predictions": [class_labels[j] for j in probs.argmax(axis=1)]}
    return fig, data


def success_matrix_figure(success, source_labels, target_labels,
                          title: str = "systematic evaluation: matched image classified as the target's class"):
    """N x N success matrix of the systematic evaluation: 1 = source i matched to target j is classified
    as j's class, 0 = not, grey = not run (same image or same class)."""
    matrix = np.asarray(success, dtype=float)
    rate = float(np.nanmean(matrix)) if np.isfinite(matrix).any() else float("nan")
    fig, ax = plt.subplots(figsize=_matrix_size(*matrix.shape))
    image = _annotated_heatmap(ax, matrix, source_labels, target_labels, 0.0, 1.0, "Greens", "{:.0f}")
    ax.set_xlabel("target image")
    ax.set_ylabel("source image")
    ax.set_title(f"{title}\nsuccess rate {rate:.1%} over {int(np.isfinite(matrix).sum())} pairs")
    fig.colorbar(image, ax=ax, label="success", fraction=0.046, pad=0.04)
    data = {"title": title, "sources": list(source_labels), "targets": list(target_labels),
            "success_matrix": [[None if np.isnan(v) else v for v in row] for row in matrix.tolist()],
            "success_rate": rate}
    return fig, data


def budget_sweep_figure(curves: dict, title: str = "matched image classified as the target's class"):
    """Success rate (top-1 = target class) against the PSNR of the 8-bit matched image, one line per pair
    set; `curves[name] = [(psnr_db_mean, success_rate), ...]`, one point per budget."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in curves.items():
        psnrs, rates = zip(*sorted(points))
        ax.plot(psnrs, [100 * r for r in rates], marker="o", label=name)
    ax.set_xlabel("PSNR of the matched image to its source (dB, higher = less visible)")
    ax.set_ylabel("target class top-1 (% of pairs)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    return fig, {"title": title, "curves": {k: [list(p) for p in v] for k, v in curves.items()}}


def survival_figure(shares: dict, cosines: dict, labels: list[str],
                    title: str = "matched pictures after what the web does to them"):
    """Two panels over the same transformations (`labels`, in order): the share of pictures read as the target's
    class and the mean cosine to the target's embedding, one line per way of matching; `shares[name]`,
    `cosines[name]`: one value per label."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    x = np.arange(len(labels))
    for name in shares:
        top.plot(x, [100 * v for v in shares[name]], marker="o", label=name)
        bottom.plot(x, cosines[name], marker="o", label=name)
    top.set_ylabel("read as the target (% of pairs)")
    top.set_ylim(-2, 102)
    bottom.set_ylabel("cosine to the target (mean)")
    bottom.set_xticks(x, labels, rotation=20, ha="right")
    bottom.set_xlabel("what the 8-bit matched picture went through (Pillow)")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    top.legend()
    top.set_title(title)
    fig.tight_layout()
    return fig, {"title": title, "labels": list(labels), "shares": {k: list(v) for k, v in shares.items()},
                 "cosines": {k: list(v) for k, v in cosines.items()}}


def matched_examples_figure(sources, matched, captions, title: str = "source, matched, difference x 50"):
    """One row per pair: the source, the matched image and their difference amplified 50x (the paper's
    Fig 2 scale, grey = no change); `captions[i] = (source caption, matched caption)`."""
    n = len(sources)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n + 0.4), squeeze=False)
    for row in range(n):
        src, out = _as_hwc(sources[row]), _as_hwc(matched[row])
        for col, (image, caption) in enumerate(((src, captions[row][0]), (out, captions[row][1]),
                                                (0.5 + 50 * (out - src), "difference x 50"))):
            axes[row, col].imshow(np.clip(image, 0, 1), interpolation="nearest")
            axes[row, col].set_title(caption, fontsize=8)
            axes[row, col].axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig, {"title": title, "captions": [list(c) for c in captions]}


def _as_hwc(image) -> np.ndarray:
    array = np.asarray(image, dtype=float)
    return array.transpose(1, 2, 0) if array.ndim == 3 and array.shape[0] == 3 else array


def pca_bars_figure(coefficients, titles, images=None, explained=None,
                    title: str = "first principal-component coefficients (PCA on a reference set)"):
    """Fig 1 style: one column per image (optional picture on top), bars of its first k PCA
    coefficients below, on a shared y scale so look-alikes with different embeddings stand out."""
    coeffs = np.asarray(coefficients, dtype=float)
    n, k = coeffs.shape
    rows = 2 if images is not None else 1
    fig, axes = plt.subplots(rows, n, figsize=(2.4 * n + 0.6, 2.6 * rows + 0.4), squeeze=False)
    limit = float(np.abs(coeffs).max()) * 1.1 or 1.0
    names = [f"PC{c + 1}" for c in range(k)]
    for col in range(n):
        if images is not None:
            axes[0, col].imshow(np.clip(_as_hwc(images[col]), 0, 1))
            axes[0, col].axis("off")
            axes[0, col].set_title(titles[col], fontsize=9)
        bars = axes[-1, col]
        bars.bar(names, coeffs[col], color=["tab:blue" if v >= 0 else "tab:orange" for v in coeffs[col]])
        bars.axhline(0, color="black", linewidth=0.6)
        bars.set_ylim(-limit, limit)
        bars.tick_params(axis="x", labelsize=7)
        if images is None:
            bars.set_title(titles[col], fontsize=9)
        if col == 0:
            bars.set_ylabel("coefficient")
    fig.suptitle(title)
    fig.tight_layout()
    data = {"title": title, "titles": list(titles), "components": names, "coefficients": coeffs.tolist(),
            "explained_variance_ratio": None if explained is None else np.asarray(explained, dtype=float).tolist()}
    return fig, data


def pca_scatter_figure(sources, targets, matched, target_of, labels=None, explained=None,
                       title: str = "embeddings on the first two principal components"):
    """2-D PCA view: an arrow from each source to its matched image, a dotted line on to the target
    it was matched to (`target_of[i]` indexes `targets`). Points are (x, y) coefficient pairs."""
    src, tgt, mat = (np.asarray(a, dtype=float)[:, :2] for a in (sources, targets, matched))
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for i, j in enumerate(target_of):
        ax.annotate("", xy=mat[i], xytext=src[i],
                    arrowprops={"arrowstyle": "->", "color": "gray", "linewidth": 1.0})
        ax.plot([mat[i, 0], tgt[j, 0]], [mat[i, 1], tgt[j, 1]], ":", color="tab:red", linewidth=0.8)
    ax.scatter(src[:, 0], src[:, 1], marker="o", color="tab:blue", label="source", zorder=3)
    ax.scatter(tgt[:, 0], tgt[:, 1], marker="*", s=140, color="tab:red", label="target", zorder=3)
    ax.scatter(mat[:, 0], mat[:, 1], marker="x", color="tab:green", label="matched", zorder=4)
    for i, text in enumerate(labels or []):
        ax.annotate(text, src[i], textcoords="offset points", xytext=(4, 4), fontsize=8)
    share = [] if explained is None else np.asarray(explained, dtype=float).tolist()
    ax.set_xlabel("PC1" + (f" ({share[0]:.0%} of variance)" if share else ""))
    ax.set_ylabel("PC2" + (f" ({share[1]:.0%} of variance)" if len(share) > 1 else ""))
    ax.set_title(title)
    ax.legend(loc="best")
    data = {"title": title, "sources": src.tolist(), "targets": tgt.tolist(), "matched": mat.tolist(),
            "target_of": [int(j) for j in target_of], "labels": list(labels or []), "explained_variance_ratio": share}
    return fig, data


# --- Jacobian spectra and directional Lipschitz estimates (probe.geometry; the paper's Figs 3 and 4)

FAMILY_COLORS = {"singular": "tab:blue", "gaussian": "tab:green", "nullspace": "tab:purple",
                 "optimized": "tab:red", "displacement": "tab:orange"}
FAMILY_LABELS = {"singular": "right singular vectors", "gaussian": "random Gaussian",
                 "nullspace": "Gaussian in the null space", "optimized": "gradient-optimised",
                 "displacement": "matching displacement"}


def _family_color(name: str) -> str:
    return FAMILY_COLORS.get(name, "tab:gray")


def _plot_spectrum(ax, sigma: np.ndarray, tol: float | None, space: str) -> None:
    index = np.arange(1, len(sigma) + 1)
    ax.semilogy(index, np.maximum(sigma, 1e-300), ".-", color="tab:blue", markersize=3, linewidth=0.8)
    if tol:
        ax.axhline(tol, color="gray", linestyle=":", linewidth=1,
                   label=f"rank tolerance {tol:.2g} (rank {int((sigma > tol).sum())})")
        ax.legend(loc="lower left", fontsize=8)
    ax.set_xlabel("index i (singular values sorted, largest first)")
    ax.set_ylabel(f"singular value $\\sigma_i$\n(embedding norm per unit {space} L2)")
    ax.grid(True, which="major", alpha=0.3)


def singular_values_figure(singular_values, tol: float | None = None, space: str = "normalized",
                           title: str = "singular values of the Jacobian of the embedding"):
    """All singular values of J = d embedding / d input at one image, sorted, log scale (Fig 3 top)."""
    sigma = np.asarray(singular_values, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4))
    _plot_spectrum(ax, sigma, tol, space)
    ax.set_title(f"{title}\n({space} input space, m = {len(sigma)}; after arXiv:2401.15568 Fig 3)")
    return fig, {"title": title, "space": space, "singular_values": sigma.tolist(), "tol": tol}


def singular_lipschitz_figure(singular_values, estimates, eps: float, tol: float | None = None,
                              space: str = "normalized",
                              title: str = "Jacobian spectrum and Lipschitz estimates along singular vectors"):
    """Fig 3 style, two panels: (top) all singular values; (bottom) estimates
    ||f(x + eps v_i) - f(x)|| / eps along the top right singular vectors v_i next to sigma_i."""
    sigma = np.asarray(singular_values, dtype=float)
    est = np.asarray(estimates, dtype=float)
    index = np.arange(1, len(est) + 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), constrained_layout=True)
    _plot_spectrum(top, sigma, tol, space)
    top.set_title("singular values of the Jacobian")
    bottom.plot(index, sigma[:len(est)], "o", mfc="none", color="tab:blue", label="singular value $\\sigma_i$")
    bottom.plot(index, est, "x", color="tab:red", label=f"estimate along $v_i$, eps = {eps:g}")
    bottom.set_yscale("log")
    bottom.set_xlabel("index i of the right singular vector $v_i$")
    bottom.set_ylabel(f"local Lipschitz estimate\n(embedding norm per unit {space} L2)")
    bottom.set_title("directional Lipschitz estimates along right singular vectors")
    bottom.legend(fontsize=8)
    bottom.grid(True, which="major", alpha=0.3)
    fig.suptitle(f"{title}\n(reconstruction after arXiv:2401.15568 Fig 3)", fontsize=11)
    return fig, {"title": title, "space": space, "eps": eps, "singular_values": sigma.tolist(),
                 "estimates": est.tolist(), "tol": tol}


def lipschitz_distributions_figure(family_values: dict, eps: float, sigma_1: float | None = None,
                                   gaussian_expected: float | None = None, space: str = "normalized",
                                   title: str = "distribution of local directional Lipschitz estimates"):
    """Fig 4 style: one histogram per direction family of ||f(x + eps v) - f(x)|| / eps, on a shared
    log axis, with sigma_1 (the local Lipschitz constant) and ||J||_F / sqrt(n) (the expected value
    along random Gaussian directions) marked."""
    values = {name: np.asarray(v, dtype=float) for name, v in family_values.items()}
    everything = np.concatenate([v[v > 0] for v in values.values()] + [np.array([sigma_1 or 1.0])])
    low, high = everything.min() / 3, everything.max() * 3
    bins = np.geomspace(low, high, 41)
    fig, axes = plt.subplots(len(values), 1, figsize=(7, 1.9 * len(values) + 1.2), sharex=True,
                             constrained_layout=True, squeeze=False)
    for ax, (name, v) in zip(axes[:, 0], values.items()):
        ax.hist(np.clip(v, low, high), bins=bins, color=_family_color(name), alpha=0.8)
        if sigma_1:
            ax.axvline(sigma_1, color="black", linestyle="--", linewidth=1, label=f"$\\sigma_1$ = {sigma_1:.3g}")
        if gaussian_expected:
            ax.axvline(gaussian_expected, color="gray", linestyle=":", linewidth=1.2,
                       label=f"$\\|J\\|_F/\\sqrt{{n}}$ = {gaussian_expected:.3g}")
        ax.set_xscale("log")
        ax.set_ylabel("directions")
        ax.set_title(f"{FAMILY_LABELS.get(name, name)}: median {np.median(v):.3g} (n = {len(v)})", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel(f"Lipschitz estimate at eps = {eps:g} (embedding norm per unit {space} L2)")
    fig.suptitle(f"{title}\n(reconstruction after arXiv:2401.15568 Fig 4)", fontsize=11)
    data = {"title": title, "space": space, "eps": eps, "sigma_1": sigma_1,
            "gaussian_expected": gaussian_expected, "families": {k: v.tolist() for k, v in values.items()}}
    return fig, data


def lipschitz_vs_eps_figure(eps, family_estimates: dict, family_errors: dict | None = None,
                            sigma_1: float | None = None, space: str = "normalized",
                            title: str = "Lipschitz estimates against the step size"):
    """Estimates ||f(x + eps v) - f(x)|| / eps against eps, one thin line per direction and the median
    per family bold; a second panel shows the first-order error ||f(x + eps v) - f(x) - eps J v|| / eps,
    where the map stops being linear."""
    eps = np.asarray(eps, dtype=float)
    panels = 2 if family_errors else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.5), constrained_layout=True, squeeze=False)
    series = [(axes[0, 0], family_estimates, "Lipschitz estimate")]
    if family_errors:
        series.append((axes[0, 1], family_errors, "first-order error / eps"))
    for ax, table, label in series:
        for name, rows in table.items():
            rows = np.asarray(rows, dtype=float)
            if label != "Lipschitz estimate":
                rows = rows / eps
            color = _family_color(name)
            for row in rows:
                ax.loglog(eps, np.maximum(row, 1e-300), color=color, alpha=0.25, linewidth=0.7)
            ax.loglog(eps, np.maximum(np.median(rows, axis=0), 1e-300), color=color, linewidth=2.2,
                      marker="o", markersize=4, label=f"{FAMILY_LABELS.get(name, name)} (median)")
        if sigma_1:
            ax.axhline(sigma_1, color="black", linestyle="--", linewidth=1, label=f"$\\sigma_1$ = {sigma_1:.3g}")
        ax.set_xlabel(f"step eps ({space} input space, L2)")
        ax.set_ylabel(f"{label}\n(embedding norm per unit {space} L2)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].set_title("||f(x + eps v) - f(x)|| / eps")
    axes[0, 0].legend(fontsize=7)
    if family_errors:
        axes[0, 1].set_title("||f(x + eps v) - f(x) - eps J v|| / eps")
    fig.suptitle(title, fontsize=11)
    data = {"title": title, "space": space, "eps": eps.tolist(), "sigma_1": sigma_1,
            "estimates": {k: np.asarray(v, dtype=float).tolist() for k, v in family_estimates.items()},
            "first_order_error": None if not family_errors else
            {k: np.asarray(v, dtype=float).tolist() for k, v in family_errors.items()}}
    return fig, data


def topk_singular_values_figure(singular_values, m: int, space: str = "normalized",
                                title: str = "largest singular values of the Jacobian of the embedding"):
    """The top k singular values from the matrix-free method (no rank: the rest were not computed)."""
    sigma = np.asarray(singular_values, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4))
    _plot_spectrum(ax, sigma, None, space)
    ax.set_title(f"{title}\n({space} input space, top {len(sigma)} of m = {m}; after arXiv:2401.15568 Fig 3)")
    return fig, {"title": title, "space": space, "m": m, "singular_values": sigma.tolist()}


# --- matching dynamics (probe.matching; the paper's Fig 5)


def match_curves_figure(trace: dict, title: str = "matching a target embedding"):
    """Fig 5 style: (left) loss against step; (right) cosine similarity to the target against step, with the
    mean absolute pixel change from the original on a second axis. `trace[name]` is one value per step
    (a list), or one list per pair; every pair is drawn."""
    loss = np.atleast_2d(np.asarray(trace["loss"], dtype=float).T)
    cos = np.atleast_2d(np.asarray(trace["cos_to_target"], dtype=float).T)
    change = np.atleast_2d(np.asarray(trace["mean_abs_pixel"], dtype=float).T)
    steps = np.arange(loss.shape[1])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for row in loss:
        left.plot(steps, row, color="tab:blue", linewidth=1)
    left.set_yscale("log" if (loss > 0).all() else "linear")
    left.set_xlabel("step")
    left.set_ylabel("loss (embedding units)")
    left.set_title("loss")
    left.grid(alpha=0.3)
    for row in cos:
        right.plot(steps, row, color="tab:red", linewidth=1)
    right.set_xlabel("step")
    right.set_ylabel("cosine similarity to the target", color="tab:red")
    right.grid(alpha=0.3)
    twin = right.twinx()
    for row in change:
        twin.plot(steps, 255 * row, color="tab:gray", linewidth=1, linestyle="--")
    twin.set_ylabel("mean |pixel change| (1/255 units)", color="tab:gray")
    right.set_title("cosine to the target (red), mean pixel change (grey)")
    fig.suptitle(f"{title}\n(after arXiv:2401.15568 Fig 5)", fontsize=11)
    data = {"title": title, "steps": steps.tolist(), "loss": loss.tolist(), "cos_to_target": cos.tolist(),
            "mean_abs_pixel": change.tolist()}
    return fig, data


# --- equivalence sets and sweeps (probe.experiments)


def cosine_matrix_figure(cosine, labels, title: str = "cosine similarity between embeddings"):
    """Pairwise cosine similarities of embeddings, annotated: look-alikes with different embeddings show as
    low values between pictures that look the same."""
    values = np.asarray(cosine, dtype=float)
    fig, ax = plt.subplots(figsize=_matrix_size(*values.shape))
    image = _annotated_heatmap(ax, values, labels, labels, -1.0, 1.0, "RdBu_r", "{:.2f}")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="cosine similarity", fraction=0.046, pad=0.04)
    return fig, {"title": title, "labels": list(labels), "cosine": values.tolist()}


def pixel_change_figure(distributions: dict, title: str = "pixel change of the matched images"):
    """One histogram per measure of pixel change (e.g. L-inf and RMS in 1/255 units, PSNR in dB), with the
    median marked: how visible the changes are over a whole sweep."""
    fig, axes = plt.subplots(1, len(distributions), figsize=(4.2 * len(distributions), 3.6), squeeze=False,
                             constrained_layout=True)
    for ax, (name, values) in zip(axes[0], distributions.items()):
        array = np.asarray(values, dtype=float)
        array = array[np.isfinite(array)]
        ax.hist(array, bins=min(30, max(5, len(array) // 2)), color="tab:blue", alpha=0.8)
        if len(array):
            ax.axvline(np.median(array), color="black", linestyle="--", linewidth=1,
                       label=f"median {np.median(array):.2f}")
            ax.legend(fontsize=8)
        ax.set_xlabel(name)
        ax.set_ylabel("matched images")
    fig.suptitle(title)
    data = {"title": title, "distributions": {k: np.asarray(v, dtype=float).tolist() for k, v in distributions.items()}}
    return fig, data


# --- figures of the repro reconstructions (probe.experiments: spectra, noise_sensitivity, transfer, compare)


def spectra_figure(curves: dict, ranks: dict | None = None, normalize: bool = False, space: str = "normalized",
                   title: str = "singular values of the Jacobian"):
    """Several spectra on one log axis (`curves[label]` = singular values, descending); `normalize` divides
    each by its sigma_1 to compare how fast they decay. `ranks[label]` = (numerical rank, m) goes in the legend."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    data = {"title": title, "space": space, "normalized_by_sigma_1": normalize, "curves": {}}
    for label, sigma in curves.items():
        values = np.asarray(sigma, dtype=float)
        shown = values / values[0] if normalize else values
        rank = (ranks or {}).get(label)
        name = label + (f" (rank {rank[0]} of {rank[1]})" if rank and rank[0] is not None else "")
        ax.semilogy(np.arange(1, len(values) + 1), np.maximum(shown, 1e-300), ".-", markersize=3, linewidth=1,
                    label=name)
        data["curves"][label] = shown.tolist()
    ax.set_xlabel("index i (singular values sorted, largest first)")
    ax.set_ylabel("$\\sigma_i / \\sigma_1$" if normalize else
                  f"singular value $\\sigma_i$\n(embedding norm per unit {space} L2)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig, data


def noise_detector_figure(rocs: dict, clean_scores, modified_scores, shown: str,
                          title: str = "Gaussian-noise sensitivity as a detector of matched images"):
    """(left) ROC curves, one per noise level, `rocs[label] = (fpr, tpr, auc)`; (right) the scores of clean
    and modified images at the level `shown`: how far noise moves each embedding."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for label, (fpr, tpr, auc) in rocs.items():
        left.plot(fpr, tpr, drawstyle="steps-post", label=f"{label}: AUC {auc:.3f}")
    left.plot([0, 1], [0, 1], ":", color="gray", linewidth=1, label="chance")
    left.set_xlabel("false-positive rate (clean images flagged)")
    left.set_ylabel("true-positive rate (matched images flagged)")
    left.set_title("ROC of the noise-sensitivity score")
    left.legend(fontsize=8, loc="lower right")
    left.grid(alpha=0.3)
    clean, modified = np.asarray(clean_scores, dtype=float), np.asarray(modified_scores, dtype=float)
    everything = np.concatenate([clean, modified])
    bins = np.geomspace(max(everything.min(), 1e-12), everything.max() * 1.01 + 1e-12, 30)
    for values, color, name in ((clean, "tab:blue", "clean"), (modified, "tab:red", "matched")):
        right.hist(values, bins=bins, alpha=0.7, color=color, weights=np.full(len(values), 100 / max(len(values), 1)),
                   label=f"{name} (n = {len(values)})")
    right.set_xscale("log")
    right.set_xlabel(f"mean cosine distance to the noisy copies' embeddings ({shown})")
    right.set_ylabel("images of the group (%)")
    right.set_title("score distributions")
    right.legend(fontsize=8)
    fig.suptitle(title)
    data = {"title": title, "roc": {k: {"fpr": list(v[0]), "tpr": list(v[1]), "auc": v[2]} for k, v in rocs.items()},
            "shown": shown, "clean_scores": clean.tolist(), "modified_scores": modified.tolist()}
    return fig, data


def transfer_figure(rates: dict, ratios: dict, reader: str = "the reader",
                    title: str = "transfer: matched images read by another model"):
    """(left) share of matched images the reader classifies as their target and as their source; (right)
    distance ratio ||f(matched) - f(target)|| / ||f(source) - f(target)|| per model (0: at the target,
    1: did not move towards it)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    names = list(rates)
    left.bar([n.replace("reader_", "").replace("_rate", "") for n in names], [100 * rates[n] for n in names],
             color=["tab:red", "tab:blue"][:len(names)])
    for i, n in enumerate(names):
        left.text(i, 100 * rates[n] + 1, f"{rates[n]:.0%}", ha="center")
    left.set_ylim(0, 110)
    left.set_ylabel("matched images (%)")
    left.set_xlabel(f"class {reader} reads in the matched image")
    left.set_title(f"classified by {reader}")
    values = [np.asarray(v, dtype=float) for v in ratios.values()]
    right.boxplot(values, showfliers=True)
    right.set_xticks(range(1, len(values) + 1), [k.replace(" on ", " on\n").replace(" by ", " by\n") for k in ratios],
                    fontsize=8)
    right.axhline(1, color="gray", linestyle=":", linewidth=1)
    right.set_ylabel("distance ratio to the target (1 = not moved)")
    right.set_title("how close the matched images' embeddings are to the target")
    fig.suptitle(title)
    return fig, {"title": title, "rates": dict(rates),
                 "distance_ratios": {k: list(map(float, v)) for k, v in ratios.items()}}


def closeness_figure(series: dict, seconds_per_step: dict, goal: float | None = None,
                     title: str = "distance to the target embedding while matching"):
    """Relative cosine distance to the target ((1 - cos) / its start) against the step (left) and against
    seconds (right, steps x the measured seconds per step), one colour per label, one line per pair."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (label, rows) in enumerate(series.items()):
        color = colors[index % len(colors)]
        for k, row in enumerate(rows):
            values = np.maximum(np.asarray(row, dtype=float), 1e-6)
            steps = np.arange(len(values))
            name = f"{label} ({seconds_per_step[label] * 1000:.0f} ms/step)" if k == 0 else None
            left.semilogy(steps, values, color=color, linewidth=1, label=name)
            right.loglog(np.maximum(steps, 1) * seconds_per_step[label], values, color=color, linewidth=1, label=name)
    for ax, xlabel in ((left, "step"), (right, "seconds (step x seconds per step)")):
        if goal:
            ax.axhline(goal, color="gray", linestyle=":", linewidth=1, label=f"goal {goal:g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("(1 - cos to target) / its start")
        ax.grid(True, which="major", alpha=0.3)
    left.legend(fontsize=8)
    left.set_title("against steps")
    right.set_title("against seconds")
    fig.suptitle(title)
    return fig, {"title": title, "goal": goal,
                 "relative_cosine_distance": {k: [list(map(float, r)) for r in v] for k, v in series.items()},
                 "seconds_per_step": dict(seconds_per_step)}


def rates_figure(rates: dict, title: str = "accuracy before and after matching", ylabel: str = "images (%)"):
    """Bars of a few shares (e.g. clean accuracy, matched accuracy, success rate), each labelled."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    names = list(rates)
    values = [100 * float(rates[n]) for n in names]
    ax.bar(range(len(names)), values, color=["tab:blue", "tab:red", "tab:green", "tab:gray"][:len(names)])
    for i, v in enumerate(values):
        ax.text(i, v + 1.5, f"{v:.1f}%", ha="center")
    ax.set_xticks(range(len(names)), names, fontsize=9)
    ax.set_ylim(0, 112)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig, {"title": title, "rates": {n: float(rates[n]) for n in names}}
