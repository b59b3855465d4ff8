from probe import plots
from probe.zeroshot import prototype_head
from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(15, "Figs 1 and 10 repeated on a second model", tests=("claim 5",),
        design="Fig 1's pairs matched on a second model (PCA bars on that model) and Fig 10's systematic "
               "evaluation on it: the effect is not one model's accident. A model without a meaningful text "
               "tower (random init) reads classes with a nearest-prototype head built from the set's own images, "
               "so its clean accuracy is 100% by construction and success means 'nearest to the target's "
               "embedding'.",
        work=lambda knobs, profile: (shared.pairs_work(knobs["pairs"], profile, role="second")
                                + shared.sweep_work(knobs["sweep"], profile, role="second")),
        metrics=("pairs_cos_to_target_png_min", "pairs_psnr_db_min", "pca_matched_closer_to_target_rate", "head",
                 "clean_accuracy", "matched_accuracy", "success_rate"), sweep=True)
def fig15(ctx):
    knobs = ctx.knobs
    encoder = ctx.model("second")
    result, targets, target_classes = shared.pairs(ctx, knobs["pairs"], role="second")
    projection, pca = shared.pca_view(ctx, result, targets, encoder, knobs["pairs"]["pca_k"])
    image_set = shared.sweep_set(ctx, knobs["sweep"]["classes"])
    head = (prototype_head(encoder, image_set.images, image_set.labels, image_set.class_names)
            if knobs["head"] == "prototype" else None)
    sweep, _ = ctx.sweep("second", image_set, knobs["sweep"]["settings"], knobs["sweep"]["batch_size"],
                         model_role="second", head=head)
    r = sweep.outcome
    pairs = shared.pair_metrics(result, target_classes)
    metrics = {"pairs_cos_to_target_png_min": pairs["cos_to_target_png_min"], "pairs_psnr_db_min": pairs["psnr_db_min"],
               **pca, "head": knobs["head"], "clean_accuracy": r.clean_accuracy,
               "matched_accuracy": r.matched_accuracy, "success_rate": r.success_rate, "sweep_pairs": len(r.pairs)}
    first = pick(projection, "pca_bars")
    if knobs["head"] == "text":
        first += pick(result, "vision_text_after")
        metrics["pairs_target_top1_rate"] = pairs["target_top1_rate"]
    notes = [f"Second model's head: {knobs['head']}" + (" (nearest prototype of the set's own images: the random "
                                                        "text tower has no meaning)" if knobs["head"] == "prototype"
                                                        else " (its own text tower)")]
    fig, data = plots.rates_figure({"clean accuracy": r.clean_accuracy, "matched accuracy\n(read as source)":
                                    r.matched_accuracy, "success rate\n(read as target)": r.success_rate},
                                   title=f"{encoder.spec.split(':')[-1]}: {len(r.labels)} images, {len(r.pairs)} pairs")
    return Output([first, pick(sweep, "success_matrix") + [("rates", fig, data)]], metrics, notes)
