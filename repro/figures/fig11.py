import torch

from probe import plots
from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(11, "Pixel change over all matched pairs of Fig 10: L-inf, RMS and PSNR, with examples",
        tests=("imperceptibility",),
        design="Distributions of the 8-bit matched images' change from their sources over the whole sweep (the "
               "changes that made them read as their targets: success rate), and a few pairs (source, matched, "
               "difference x 50) spread over it. Peaks (L-inf) are reported, not bounded.",
        work=shared.sweep_work,
        metrics=("pairs", "success_rate", "psnr_db_min", "psnr_db_median", "mean_abs_255_max", "linf_255_median",
                 "linf_255_max", "rms_255_median"),
        sweep=True)
def fig11(ctx):
    sweep, _ = shared.main_sweep(ctx)
    r = sweep.outcome
    o = r.outcomes
    shown = torch.linspace(0, len(o) - 1, min(ctx.knobs["examples"], len(o))).round().long().tolist()
    captions = [(f"{r.class_names[r.labels[o.pairs.sources[k]]]} (source)",
                 f"-> {r.class_names[r.labels[o.pairs.targets[k]]]}: {o.psnr_db[k]:.1f} dB, "
                 f"L-inf {255 * o.linf_pixel[k]:.0f}/255") for k in shown]
    fig, data = plots.matched_examples_figure(o.sources[shown].numpy(), o.matched[shown].numpy(), captions,
                                              title="examples: source, 8-bit matched, difference x 50")
    metrics = {"pairs": len(o), "success_rate": r.success_rate, **shared.sweep_change(o),
               "psnr_db_median": o.psnr_db.median().item(),
               "linf_255_median": 255 * o.linf_pixel.median().item(), "linf_255_max": 255 * o.linf_pixel.max().item(),
               "rms_255_median": 255 * o.rms_pixel.median().item()}
    return Output([pick(sweep, "pixel_change"), [("examples", fig, data)]], metrics)
