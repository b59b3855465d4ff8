from probe import plots
from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(10, "Systematic N x N evaluation: every image matched to every image of another class", tests=("claim 4",),
        design="The sister paper's evaluation (arXiv:2402.08473: zero-shot accuracy > 99% on clean Imagenette, 0% "
               "after matching): success matrix (matched image read as the target's class) and clean vs matched "
               "accuracy, over 8-bit matched images that still look like their sources (PSNR, mean change).",
        work=shared.sweep_work,
        metrics=("images", "pairs", "clean_accuracy", "matched_accuracy", "success_rate", "converged_rate",
                 "psnr_db_min", "mean_abs_255_max"),
        sweep=True)
def fig10(ctx):
    sweep, _ = shared.main_sweep(ctx)
    r = sweep.outcome
    rates = {"clean accuracy": r.clean_accuracy, "matched accuracy\n(read as source)": r.matched_accuracy,
             "success rate\n(read as target)": r.success_rate}
    fig, data = plots.rates_figure(rates, title=f"{len(r.labels)} images, {len(r.pairs)} matched pairs")
    metrics = {"images": len(r.labels), "pairs": len(r.pairs), "clean_accuracy": r.clean_accuracy,
               "matched_accuracy": r.matched_accuracy, "success_rate": r.success_rate,
               "converged_rate": float(r.converged.float().mean()), **shared.sweep_change(r.outcomes),
               "shards": sweep.settings["shards"],
               "engine": sweep.settings["engine"]["engine"], "sweep_key": sweep.settings["sweep_key"]}
    return Output([pick(sweep, "success_matrix") + [("rates", fig, data)]], metrics)
