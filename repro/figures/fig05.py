from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(5, "Matching a target embedding: loss and cosine to the target against the step, with the mean pixel "
           "change", tests=("matching dynamics",),
        design="The trace of pair (a) of Fig 1 under the profile's procedure: loss (log), cosine to the target "
               "and the mean absolute pixel change from the original, every step.",
        work=lambda knobs, profile: shared.pairs_work(knobs, profile)[:1],
        metrics=("steps", "converged", "loss_initial", "loss_final", "loss_reduction", "cos_initial", "cos_final",
                 "mean_abs_255_final"))
def fig5(ctx):
    result, _, _ = shared.pairs(ctx)
    pair = result.pairs[0]
    trace = pair.trace
    metrics = {"steps": pair.values["steps_run"], "converged": pair.values["converged"],
               "loss_initial": trace["loss"][0], "loss_final": trace["loss"][-1],
               "loss_reduction": trace["loss"][0] / max(trace["loss"][-1], 1e-30),
               "cos_initial": trace["cos_to_target"][0], "cos_final": trace["cos_to_target"][-1],
               "mean_abs_255_final": 255 * trace["mean_abs_pixel"][-1]}
    return Output([pick(pair, "curves")], metrics)
