import torch

from probe import experiments
from repro import work
from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(6, "Many sources, one target: different pictures made to share one embedding", tests=("claim 1",),
        design="Sources of different content matched to one target (as the paper's road scenes to 'speed limit "
               "70'): each is classified as the target, and their embeddings become nearly identical while the "
               "pictures stay apart.",
        work=lambda knobs, profile: [work.pairs("fig6", "main", len(knobs["sources"]), knobs["settings"], profile)],
        metrics=("pairs", "target_top1_rate", "target_probability_min", "share_target_p99", "psnr_db_min", "mean_abs_255_max",
                 "cos_between_matched_min", "cos_between_sources_mean"))
def fig6(ctx):
    knobs = ctx.knobs
    sources, names, targets, target_names, classes, target_classes = shared.pair_images(
        ctx, {**knobs, "targets": [knobs["target"]]})
    result = ctx.finished(experiments.equivalence(ctx.model("main"), sources, targets, ctx.settings(knobs["settings"]),
                                               classes=classes, seed=ctx.profile.seed, progress=ctx.stage("pairs")))
    shared.label_pairs(result, names, shared.with_class(target_names, target_classes) * len(names))
    off = ~torch.eye(len(names), dtype=torch.bool)
    metrics = {**shared.pair_metrics(result, target_classes * len(names)),
               "cos_between_matched_min": result.cosine_matched[off].min().item(),
               "cos_between_sources_mean": result.cosine_sources[off].mean().item()}
    return Output([pick(result, "gallery"), pick(result, "vision_text_after", "cosine_matched")], metrics)
