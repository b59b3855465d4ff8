from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(2, "Pixel differences of the pairs of Fig 1, multiplied by 50", tests=("imperceptibility",),
        design="Each source, its matched image (8-bit) and 0.5 + 50 x (matched - source), the paper's scale.",
        metrics=("pairs", "psnr_db_min", "psnr_db_mean", "linf_255_max", "mean_abs_255_max"))
def fig2(ctx):
    run, _, _ = shared.pairs(ctx)
    values = [p.values for p in run.pairs]
    metrics = {"pairs": len(values), "psnr_db_min": min(v["psnr_db_png"] for v in values),
               "psnr_db_mean": sum(v["psnr_db_png"] for v in values) / len(values),
               "linf_255_max": 255 * max(v["linf_pixel_png"] for v in values),
               "mean_abs_255_max": 255 * max(v["mean_abs_pixel"] for v in values)}
    return Output([pick(run, "gallery")], metrics)
