"""Experiment results read by several figures (computed once per run), and the recipes' small helpers."""
from __future__ import annotations

from pathlib import Path

import torch

from probe import experiments
from probe.data import ImageSet
from probe.images import quantize
from repro import fingerprints, work
from repro.data import count


def pair_images(ctx, knobs: dict):
    """Sources (photos role) and targets (targets role) of a pair figure, the classes its zero-shot head
    reads (`columns` of the targets' classes, always including the targets' own) and each target's class."""
    sources, source_names, _ = ctx.pick("photos", knobs["sources"])
    targets, target_names, target_labels = ctx.pick("targets", knobs["targets"])
    names = ctx.images("targets").class_names
    target_classes = [names[label] for label in target_labels]
    columns = knobs.get("columns")
    classes = [names[i % len(names)] for i in columns] if columns else list(names)
    classes += [c for c in dict.fromkeys(target_classes) if c not in classes]
    return sources, source_names, targets, target_names, classes, target_classes


def with_class(names: list[str], classes: list[str]) -> list[str]:
    """`name (class)`, or the name alone where it already says the class."""
    return [name if cls in name else f"{name} ({cls})" for name, cls in zip(names, classes)]


def label_pairs(result, source_names, target_names):
    """Name an equivalence result's pairs after their images (the result only knows files by name)."""
    result.sources, result.targets = list(source_names), list(target_names)
    for pair, source, target in zip(result.pairs, source_names, target_names):
        pair.source, pair.target = source, target
    return result


def pairs(ctx, knobs: dict | None = None, role: str = "main"):
    """Fig 1's three pairs matched on a role's model and classified before and after (Figs 1, 2, 5, 15)."""
    knobs = knobs or ctx.knobs
    encoder = ctx.model(role)
    sources, source_names, targets, target_names, classes, target_classes = pair_images(ctx, knobs)

    def compute():
        result = experiments.equivalence(encoder, sources, targets, ctx.settings(knobs["settings"]),
                                         classes=classes, seed=ctx.profile.seed, progress=ctx.stage("pairs"))
        return label_pairs(ctx.finished(result), source_names, with_class(target_names, target_classes))
    return ctx.shared(f"pairs:{ctx.spec(role)}:{knobs['settings']}", compute), targets, target_classes


def pairs_work(knobs: dict, profile, role: str = "main") -> list:
    """What `pairs` computes (Figs 1, 2, 5, 15): its pairs, and the PCA view's images for Figs 1 and 15."""
    n = len(knobs["sources"])
    return [work.pairs("pairs", role, n, knobs["settings"], profile),
            work.forward(f"pca:{role}", role, count(profile.images["classes"]) + 3 * n)]


def geometry_work(knobs: dict, profile) -> list:
    """What `geometry` and its control spectrum compute (Figs 3, 4, 14)."""
    return [work.lipschitz("geometry", "main", knobs), work.jacobians(f"control:{knobs['image']}", "control", 1)]


def sweep_work(knobs: dict, profile, role: str = "main") -> list:
    """The systematic N x N sweep (Figs 10, 11, 16, 18; Fig 15 on the second model)."""
    images = knobs.get("classes") or count(profile.images["sweep"])
    return [work.sweep(role, role, images, knobs["settings"], knobs["batch_size"], profile)]


def pair_metrics(result, target_classes: list[str]) -> dict:
    """What every pair figure reports: target read as top-1, its probability, and the pixel change."""
    values = [p.values for p in result.pairs]
    out = {"pairs": len(result.pairs), "psnr_db_min": min(v["psnr_db_png"] for v in values),
           "psnr_db_mean": sum(v["psnr_db_png"] for v in values) / len(values),
           "mean_abs_255_max": 255 * max(v["mean_abs_pixel_png"] for v in values),
           "linf_255_max": 255 * max(v["linf_pixel_png"] for v in values),
           "cos_to_target_png_min": min(v["cos_to_target_png"] for v in values),
           "steps_max": max(v["steps_run"] for v in values), "converged": sum(v["converged"] for v in values)}
    if result.probabilities_after is not None:
        index = torch.tensor([result.classes.index(c) for c in target_classes])
        probs = result.probabilities_after
        p_target = probs[torch.arange(len(index)), index]
        out |= {"target_top1_rate": (probs.argmax(1) == index).float().mean().item(),
                "target_probability_min": p_target.min().item(), "target_probability_mean": p_target.mean().item(),
                "share_target_p99": (p_target >= 0.99).float().mean().item(),
                "source_read_as_target_before": (result.probabilities_before.argmax(1) == index).float().mean().item()}
    return out


def model_resolution(encoder, images) -> torch.Tensor:
    """Images at the model's input size (as the matcher sees them), for side-by-side display."""
    with torch.no_grad():
        return torch.cat([encoder.to_model_input(i[None].float().to(encoder.device)).clamp(0, 1).cpu()
                          for i in images])


def pca_view(ctx, result, targets, encoder, k: int):
    """Sources, matched (8-bit) and targets on the first k principal components of the classes role."""
    sources = [p.source_pixels for p in result.pairs]
    matched = [quantize(p.matched) for p in result.pairs]
    shown_targets = list(model_resolution(encoder, targets))
    letters = "abcdefghijklmnop"   # the paper's letters: sources (a-c), matrix (d), matched (e-g), matrix (h)
    names = ([f"({letters[i]}) {Path(p.source).stem}" for i, p in enumerate(result.pairs)]
             + [f"({letters[i + len(result.pairs) + 1]}) {Path(p.source).stem} -> {p.target.split(' (')[0]}"
                for i, p in enumerate(result.pairs)]
             + [f"target: {p.target.split(' (')[0]}" for p in result.pairs])
    projection = experiments.projection(encoder, sources + matched + shown_targets, ctx.images("classes"),
                                        names=names, k=k, seed=ctx.profile.seed)
    coeffs = projection.coefficients
    n = len(result.pairs)
    closer = [float((coeffs[n + i] - coeffs[2 * n + i]).norm() < (coeffs[n + i] - coeffs[i]).norm())
              for i in range(n)]
    return projection, {"pca_matched_closer_to_target_rate": sum(closer) / n,
                        "pca_explained_variance": float(projection.explained.sum())}


def spectral_shape(sigma) -> dict:
    """How a spectrum decays: sigma_{m/2} / sigma_1, and sigma_1 over the root-mean-square singular value."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    return {"decay_half": float(sigma[len(sigma) // 2] / sigma[0]),
            "sigma1_over_rms": float(sigma[0] / sigma.pow(2).mean().sqrt())}


def versus_control(ctx, image, sigma) -> dict:
    """The spectrum `sigma` of the main model at `image` against its random-init control's at the same image
    (computed once per result and image): a result-relative check that holds for any weights of a trained model and
    fails for untrained ones, whose spectra decay slowly."""
    control = ctx.model("control")
    key = f"control_spectrum:{ctx.spec('control')}:{fingerprints.tensors(image)}"
    result = ctx.shared(key, lambda: ctx.finished(experiments.spectrum(control, image, seed=ctx.profile.seed,
                                                                   progress=ctx.stage("control spectrum"))))
    main, other = spectral_shape(sigma), spectral_shape(result.singular_values)
    return {**main, **{f"{k}_control": v for k, v in other.items()},
            "decay_half_over_control": main["decay_half"] / other["decay_half"],
            "sigma1_over_rms_over_control": main["sigma1_over_rms"] / other["sigma1_over_rms"]}


def geometry_image(ctx):
    """The image the geometry figures study: Fig 1 (a)."""
    (image,), _, _ = ctx.pick("photos", [ctx.knobs["image"]])
    return image


def geometry(ctx):
    """Jacobian spectrum and Lipschitz estimates of every direction family at Fig 1 (a) (Figs 3, 4, 14)."""
    knobs, encoder = ctx.knobs, ctx.model("main")
    image = geometry_image(ctx)
    return ctx.shared("lipschitz", lambda: ctx.finished(experiments.lipschitz(
        encoder, image, samples=knobs["samples"], eps=knobs["eps"], optimize_steps=knobs["optimize_steps"],
        seed=ctx.profile.seed, progress=ctx.stage("lipschitz"))))


def first_classes(image_set: ImageSet, count: int | None) -> ImageSet:
    """The images of the first `count` classes (all when None)."""
    if count is None or count >= len(image_set.class_names):
        return image_set
    rows = [i for i, label in enumerate(image_set.labels) if label < count]
    return ImageSet([image_set.images[i] for i in rows], [image_set.labels[i] for i in rows],
                    image_set.class_names[:count], [image_set.names[i] for i in rows],
                    f"{image_set.source} (first {count} classes)")


def main_sweep(ctx):
    """The systematic N x N of the sweep role (its first `classes` classes) on the main model (Figs 10, 11, 16,
    18): (result, plan)."""
    knobs = ctx.knobs
    return ctx.sweep("main", sweep_set(ctx, knobs.get("classes")), knobs["settings"], knobs["batch_size"])


def sweep_change(outcomes) -> dict:
    """How far a sweep's 8-bit matched images moved from their sources: the lowest PSNR, the largest mean
    absolute change."""
    change = (outcomes.matched - outcomes.sources).abs().flatten(1).mean(1)
    return {"psnr_db_min": outcomes.psnr_db.min().item(), "mean_abs_255_max": 255 * change.max().item()}


def sweep_set(ctx, classes: int | None) -> ImageSet:
    return first_classes(ctx.images("sweep"), classes)


def compare_variants(ctx, knobs: dict):
    """Fig 1's pairs (sources, targets of the knobs) matched under each variant `{slug: {"model": role,
    "settings": {...}}}` (Figs 19, 20)."""
    sources, _, targets, _, _, _ = pair_images(ctx, knobs)
    variants = {slug.replace("_", " "): (ctx.model(v["model"]), ctx.settings(v["settings"]))
                for slug, v in knobs["variants"].items()}
    return ctx.finished(experiments.compare(sources, targets, variants, goal=knobs["goal"], seed=ctx.profile.seed,
                                            progress=ctx.stage("compare")))


def compare_work(knobs: dict, profile) -> list:
    """Each variant's pairs on its model (Figs 19, 20), and Fig 19's two spectra."""
    pairs = [work.pairs(f"compare:{slug}", v["model"], len(knobs["sources"]), v["settings"], profile)
             for slug, v in knobs["variants"].items()]
    spectra = [work.jacobians(f"spectra:{role}", role, 1) for role in ("main", "control")] if "image" in knobs else []
    return pairs + spectra


def compare_metrics(result, knobs: dict) -> dict:
    """Per variant: share of pairs that reached the goal, seconds until the last of them did (None when one
    never did), median final relative cosine distance, steps to the goal, seconds per step."""
    numbers = result.numbers()
    out = {"goal": knobs["goal"], "variants": list(knobs["variants"]), "reached_rate": {}, "seconds_to_goal_max": {},
           "final_median": {}, "steps_to_goal": {}, "seconds_per_step": {}}
    for slug in knobs["variants"]:
        entry = numbers[slug.replace("_", " ")]
        seconds = entry["seconds_to_goal"]
        finals = sorted(entry["final_relative_cosine_distance"])
        out["reached_rate"][slug] = sum(s is not None for s in seconds) / len(seconds)
        out["seconds_to_goal_max"][slug] = None if None in seconds else max(seconds)
        out["final_median"][slug] = finals[len(finals) // 2]
        out["steps_to_goal"][slug] = entry["steps_to_goal"]
        out["seconds_per_step"][slug] = entry["seconds_per_step"]
    return out
