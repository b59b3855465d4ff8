from probe import experiments
from probe.images import quantize
from repro import work
from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(18, "Gaussian-noise sensitivity of clean vs matched images, as a detector: ROC and AUC",
        tests=("beyond",),
        design="After arXiv:2402.08473: how far Gaussian pixel noise moves an image's embedding (mean cosine "
               "distance to its noisy copies), for clean images (Fig 10's and the classes set's, 8-bit) and Fig "
               "10's 8-bit matched images; the ROC of that score as a detector of matched images, per noise level.",
        work=lambda knobs, profile: shared.sweep_work(knobs, profile) + [work.forward(
            "noise", "main", 2 * shared.sweep_work(knobs, profile)[0].items * (1 + len(knobs["sigmas"]) * knobs["samples"]))],
        metrics=("clean", "matched", "sigmas_255", "auc", "auc_max"), sweep=True)
def fig18(ctx):
    sweep, _ = shared.main_sweep(ctx)
    o = sweep.outcome.outcomes
    main = ctx.model("main")
    originals = shared.sweep_set(ctx, ctx.knobs.get("classes")).images + ctx.images("classes").images
    clean = quantize(shared.model_resolution(main, originals))
    result = ctx.finished(experiments.noise_sensitivity(main, clean, o.matched, sigmas=ctx.knobs["sigmas"],
                                                        samples=ctx.knobs["samples"], seed=ctx.profile.seed,
                                                        progress=ctx.stage("noise")))
    auc = [result.roc[s][2] for s in result.sigmas]
    metrics = {"clean": len(clean), "matched": len(o), "sigmas_255": [255 * s for s in result.sigmas], "auc": auc,
               "auc_max": max(auc)}
    return Output([pick(result, "noise_roc")], metrics)
