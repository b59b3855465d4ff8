from probe import experiments
from repro import work
from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(12, "Jacobian spectra at several images, and their numerical rank", tests=("claim 3",),
        design="All singular values of the Jacobian at photos and class images: the rank stays below the "
               "embedding size m (the LayerNorm before the projection removes two directions where the width "
               "allows) and far below n, so a null space of dimension >= n - m exists at every image; the first "
               "image's spectrum decays much faster than the random-init control's there.",
        work=lambda knobs, profile: [work.jacobians("fig12", "main", len(knobs["images"])),
                                work.jacobians("control:fig12", "control", 1)],
        metrics=("images", "m", "n", "ranks", "rank_min", "rank_max", "sigma_1", "decay_half_over_control"))
def fig12(ctx):
    encoder = ctx.model("main")
    items, labels = [], []
    for role, index in ctx.knobs["images"]:
        (image,), (name,), _ = ctx.pick(role, [index])
        items.append((encoder, image))
        labels.append(name)
    first = items[0][1]
    result = ctx.finished(experiments.spectra(items, labels=labels, seed=ctx.profile.seed, progress=ctx.stage("spectra")))
    ranks = [r.numerical_rank for r in result.runs]
    metrics = {"images": len(ranks), "m": result.runs[0].m, "n": result.runs[0].n, "ranks": ranks, "rank_min": min(ranks),
               "rank_max": max(ranks), "sigma_1": [float(r.singular_values[0]) for r in result.runs],
               **shared.versus_control(ctx, first, result.runs[0].singular_values)}
    return Output([pick(result, "spectra")], metrics)
