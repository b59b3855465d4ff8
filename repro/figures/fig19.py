from probe import experiments
from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(19, "Trained vs random-init model: the same matching and spectra, the control the paper lacks",
        tests=("beyond",),
        design="Fig 1's pairs matched on the trained model and on its architecture with random weights, at the "
               "trained model's pixel budget and at a larger one, and the two Jacobian spectra at Fig 1 (a): is "
               "the equivalence structure learned, or a property of the architecture?",
        work=shared.compare_work,
        metrics=("goal", "variants", "reached_rate", "final_median", "sigma_1", "ranks", "decay_half"))
def fig19(ctx):
    knobs = ctx.knobs
    result = shared.compare_variants(ctx, knobs)
    main, control = ctx.model("main"), ctx.model("control")
    (image,), _, _ = ctx.pick("photos", [knobs["image"]])
    spectra = ctx.finished(experiments.spectra([(main, image), (control, image)], labels=["trained", "random init"],
                                               normalize=True, seed=ctx.profile.seed, progress=ctx.stage("spectra")))
    metrics = {**shared.compare_metrics(result, knobs),
               "sigma_1": [float(r.singular_values[0]) for r in spectra.runs],
               "ranks": [r.numerical_rank for r in spectra.runs],
               "decay_half": [float(r.singular_values[r.m // 2] / r.singular_values[0]) for r in spectra.runs]}
    return Output([pick(result, "closeness") + pick(spectra, "spectra")], metrics)
