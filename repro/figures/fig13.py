from probe import experiments
from repro import work
from repro.compose import Output, pick
from repro.registry import figure


@figure(13, "Jacobian spectra across models, normalised by sigma_1", tests=("claim 5",),
        design="The same image through several models (the paper: CLIP ViT-B/32, ViT-L/14, OpenCLIP ViT-H-14): "
               "every spectrum has rank <= m << n, so the structure is not one model's accident; decay shapes "
               "compared after dividing by sigma_1.",
        work=lambda knobs, profile: [work.jacobians(f"fig13:{role}", role, 1) for role in knobs["models"]],
        metrics=("models", "m", "ranks", "rank_deficit", "sigma_1", "decay_half"))
def fig13(ctx):
    (image,), _, _ = ctx.pick("photos", [ctx.knobs["image"]])
    roles = ctx.knobs["models"]
    encoders = [ctx.model(role) for role in roles]
    labels = [f"{role}: {ctx.spec(role)}" for role in roles]
    result = ctx.finished(experiments.spectra([(e, image) for e in encoders], labels=labels, normalize=True,
                                           seed=ctx.profile.seed, progress=ctx.stage("spectra")))
    metrics = {"models": [ctx.spec(role) for role in roles], "m": [r.m for r in result.runs],
               "ranks": [r.numerical_rank for r in result.runs],
               "rank_deficit": [r.m - r.numerical_rank for r in result.runs],
               "sigma_1": [float(r.singular_values[0]) for r in result.runs],
               "decay_half": [float(r.singular_values[r.m // 2] / r.singular_values[0]) for r in result.runs]}
    return Output([pick(result, "spectra")], metrics)
