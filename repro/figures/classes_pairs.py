"""Figs 8 and 9: images of the paper's ImageNet classes, each matched to the next one's image."""
from probe import experiments
from repro import work as counted
from repro.compose import Output, pick
from repro.figures import shared


def recipe(ctx):
    knobs = ctx.knobs
    image_set = ctx.images("classes")
    indices = knobs["images"]
    images, names, labels = ctx.pick("classes", indices)
    targets = images[1:] + images[:1]
    target_classes = [image_set.class_names[label] for label in labels[1:] + labels[:1]]
    result = ctx.finished(experiments.equivalence(ctx.model("main"), images, targets, ctx.settings(knobs["settings"]),
                                               classes=list(image_set.class_names), seed=ctx.profile.seed,
                                               progress=ctx.stage("pairs")))
    source_classes = [image_set.class_names[label] for label in labels]
    shared.label_pairs(result, shared.with_class(names, source_classes), target_classes)
    return Output([pick(result, "gallery"), pick(result, "vision_text_after")], shared.pair_metrics(result, target_classes))


def work(knobs, profile):
    return [counted.pairs(f"classes:{knobs['images']}", "main", len(knobs["images"]), knobs["settings"], profile)]
