import torch

from probe import experiments
from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(7, "One source, many targets: look-alikes whose embeddings differ", tests=("claim 2",),
        design="One source matched to several targets: the matched images all look like the source (PSNR), yet "
               "their embeddings are far apart (pairwise cosine) and each is read as its own target.",
        metrics=("pairs", "target_top1_rate", "psnr_db_min", "cos_between_matched_max"))
def fig7(ctx):
    knobs = ctx.knobs
    sources, names, targets, target_names, classes, target_classes = shared.pair_images(
        ctx, {**knobs, "sources": [knobs["source"]], "columns": None})
    classes = list(dict.fromkeys(target_classes))
    run = ctx.finished(experiments.equivalence(ctx.model("main"), sources, targets, ctx.settings(knobs["settings"]),
                                               classes=classes, seed=ctx.profile.seed, progress=ctx.stage("pairs")))
    shared.label_pairs(run, names * len(targets), shared.with_class(target_names, target_classes))
    off = ~torch.eye(len(targets), dtype=torch.bool)
    metrics = {**shared.pair_metrics(run, target_classes),
               "cos_between_matched_max": run.cosine_matched[off].max().item()}
    return Output([pick(run, "gallery"), pick(run, "cosine_matched", "vision_text_after")], metrics)
