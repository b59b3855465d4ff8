from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(20, "The authors' procedure vs the fast mode: closeness to the target against steps and seconds",
        tests=("beyond",),
        design="The same pairs matched by the authors' plain gradient descent (without its early stop, to its "
               "cap) and by the fast mode: the relative cosine distance to the target per step and per second.",
        work=shared.compare_work,
        metrics=("goal", "variants", "reached_rate", "seconds_to_goal_max", "final_median"))
def fig20(ctx):
    result = shared.compare_variants(ctx, ctx.knobs)
    return Output([pick(result, "closeness")], shared.compare_metrics(result, ctx.knobs))
