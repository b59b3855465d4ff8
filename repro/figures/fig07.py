import torch

from probe import experiments
from repro import work
from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(7, "One source, many targets: look-alikes whose embeddings differ", tests=("claim 2",),
        design="One source matched to several targets: the matched images all look like the source (PSNR), yet "
               "their embeddings are far apart (pairwise cosine) and each is read as its own target, with the "
               "source's own class among the classes offered (so reading the picture would win).",
        work=lambda knobs, profile: [work.pairs("fig7", "main", len(knobs["targets"]), knobs["settings"], profile)],
        metrics=("pairs", "source_class", "target_top1_rate", "read_as_source_rate", "psnr_db_min",
                 "mean_abs_255_max", "cos_between_matched_max"))
def fig7(ctx):
    knobs = ctx.knobs
    role, index = knobs["source"]
    (source,), (name,), (label,) = ctx.pick(role, [index])
    source_class = ctx.images(role).class_names[label]
    targets, target_names, target_labels = ctx.pick("targets", knobs["targets"])
    target_classes = [ctx.images("targets").class_names[i] for i in target_labels]
    classes = list(dict.fromkeys([source_class, *target_classes]))
    result = ctx.finished(experiments.equivalence(ctx.model("main"), [source], targets, ctx.settings(knobs["settings"]),
                                               classes=classes, seed=ctx.profile.seed, progress=ctx.stage("pairs")))
    shared.label_pairs(result, shared.with_class([name], [source_class]) * len(targets),
                       shared.with_class(target_names, target_classes))
    off = ~torch.eye(len(targets), dtype=torch.bool)
    read = result.probabilities_after.argmax(1)
    metrics = {**shared.pair_metrics(result, target_classes), "source_class": source_class,
               "read_as_source_rate": (read == classes.index(source_class)).float().mean().item(),
               "cos_between_matched_max": result.cosine_matched[off].max().item()}
    return Output([pick(result, "gallery"), pick(result, "cosine_matched", "vision_text_after")], metrics)
