from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(2, "Pixel differences of the pairs of Fig 1, multiplied by 50", tests=("imperceptibility",),
        design="Each source, its matched image (8-bit) and 0.5 + 50 x (matched - source), the paper's scale: the "
               "changes that carried each source to its target's embedding (cosine and class after the PNG round "
               "trip) are imperceptible (PSNR and mean absolute change; peaks are reported, not bounded).",
        work=lambda knobs, profile: shared.pairs_work(knobs, profile)[:1],
        metrics=("pairs", "psnr_db_min", "psnr_db_mean", "linf_255_max", "mean_abs_255_max", "cos_to_target_png_min",
                 "target_top1_rate"))
def fig2(ctx):
    result, _, target_classes = shared.pairs(ctx)
    return Output([pick(result, "gallery")], shared.pair_metrics(result, target_classes))
