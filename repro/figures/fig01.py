from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(1, "Look-alikes with different embeddings: PCA coefficients and zero-shot matrices before and after "
           "matching", tests=("claim 1", "claim 2", "claim 4"),
        design="Three sources (a-c) matched to unrelated targets (e-g): bars of the first principal-component "
               "coefficients (PCA on the classes set) and the vision x text probabilities of the sources (d) and of "
               "the 8-bit matched images (h).",
        work=shared.pairs_work,
        metrics=("pairs", "target_top1_rate", "target_probability_min", "share_target_p99", "psnr_db_min", "mean_abs_255_max",
                 "cos_to_target_png_min", "pca_matched_closer_to_target_rate"))
def fig1(ctx):
    result, targets, target_classes = shared.pairs(ctx)
    projection, pca = shared.pca_view(ctx, result, targets, ctx.model("main"), ctx.knobs["pca_k"])
    rows = [pick(projection, "pca_bars"), pick(result, "vision_text_before", "vision_text_after")]
    return Output(rows, {**shared.pair_metrics(result, target_classes), **pca})
