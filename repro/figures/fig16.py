from probe import experiments
from probe.zeroshot import prototype_head
from repro import work
from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(16, "Transfer: images matched on one model, read by another", tests=("claim 5",),
        design="The 8-bit matched images of Fig 10 read by a second model: the control that the equivalence "
               "classes are model-specific. The distance ratio ||f(matched) - f(target)|| / ||f(source) - "
               "f(target)|| is ~0 on the model that matched them and ~1 on a model that sees the source.",
        work=lambda knobs, profile: shared.sweep_work(knobs, profile) + [   # distance ratios on both, classes
            work.forward("reader", knobs["reader"], 4 * shared.sweep_work(knobs, profile)[0].items),
            work.forward("matcher", "main", 3 * shared.sweep_work(knobs, profile)[0].items)],
        metrics=("pairs", "reader_target_rate", "reader_source_rate", "distance_ratio_reader_median",
                 "distance_ratio_matcher_median"), sweep=True)
def fig16(ctx):
    sweep, plan = shared.main_sweep(ctx)
    o = sweep.outcome.outcomes
    image_set = shared.sweep_set(ctx, ctx.knobs.get("classes"))
    main, reader = ctx.model("main"), ctx.model(ctx.knobs["reader"])
    targets = shared.model_resolution(main, [image_set.images[t] for t in o.pairs.targets])
    head = (prototype_head(reader, image_set.images, image_set.labels, image_set.class_names)
            if ctx.knobs["reader_head"] == "prototype" else None)
    labels = image_set.labels
    result = experiments.transfer(reader, o.matched, o.sources, targets, [labels[s] for s in o.pairs.sources],
                                  [labels[t] for t in o.pairs.targets], image_set.class_names, head=head,
                                  matcher=main, seed=ctx.profile.seed)
    numbers = result.numbers()
    metrics = {"pairs": len(o), **{k: numbers[k] for k in ("reader_target_rate", "reader_source_rate",
                                                           "distance_ratio_reader_median",
                                                           "distance_ratio_matcher_median")},
               "reader": reader.spec, "reader_head": ctx.knobs["reader_head"]}
    notes = [f"Reader {reader.spec} reads classes with its {ctx.knobs['reader_head']} head"
             + (" built from the sweep's clean images" if ctx.knobs["reader_head"] == "prototype" else "")]
    return Output([pick(result, "transfer")], metrics, notes)
