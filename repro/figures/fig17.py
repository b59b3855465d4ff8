from probe import experiments
from repro import work
from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(17, "Image -> text-embedding matching: one picture made to carry the embedding of each class name",
        tests=("beyond",),
        design="After arXiv:2407.01157 ('Unaligning Everything', no public code): a source matched to the text "
               "embedding of each class name (its direction, at the image's own norm), then classified zero-shot "
               "over those names; the sister paper reports 100% success.",
        work=lambda knobs, profile: [work.pairs("fig17", "main", len(knobs["texts"]), knobs["settings"], profile)],
        metrics=("pairs", "text_success_rate", "target_probability_min", "psnr_db_min", "mean_abs_255_max"))
def fig17(ctx):
    knobs = ctx.knobs
    (source,), (name,), _ = ctx.pick("photos", [knobs["source"]])
    names = ctx.images("targets").class_names
    texts = list(dict.fromkeys(names[i % len(names)] for i in knobs["texts"]))
    result = ctx.finished(experiments.match_text(ctx.model("main"), [source], texts, ctx.settings(knobs["settings"]),
                                              seed=ctx.profile.seed, progress=ctx.stage("pairs")))
    shared.label_pairs(result, [name] * len(texts), [f'text "{t}"' for t in texts])
    pairs = shared.pair_metrics(result, texts)
    metrics = {"pairs": len(texts), "text_success_rate": pairs["target_top1_rate"],
               "target_probability_min": pairs["target_probability_min"], "psnr_db_min": pairs["psnr_db_min"],
               "mean_abs_255_max": pairs["mean_abs_255_max"]}
    return Output([pick(result, "gallery"), pick(result, "vision_text_after")], metrics)
