from dataclasses import replace

from PIL import Image, ImageOps

from probe import plots
from probe.experiments import LabelledPair, read_as_target
from probe.images import to_pil
from probe.readback import READ_BACK, SHOWN, SURVIVAL
from repro import work
from repro.compose import Output
from repro.figures import shared
from repro.registry import figure

CODECS = READ_BACK + SURVIVAL


def survival_work(knobs: dict, profile) -> list:
    count = len(knobs["sources"]) * len(knobs["targets"])
    plain = knobs["settings"]
    return [work.pairs("fig21:plain", "main", count, plain, profile),
            work.pairs("fig21:survive", "main", count, {**plain, "survive": knobs["survive"]}, profile)]


@figure(21, "Beyond the paper: do matches survive JPEG and resizing? Plain and transformation-aware matching",
        tests=("beyond",),
        design="Every source matched to every target (fast mode, same budget, steps and seed) plainly and with "
               "`survive` (on a random half of the steps the loss is taken on a random differentiable JPEG / "
               "rescaling of the picture instead: "
               "expectation over transformations); each 8-bit result re-encoded by Pillow (JPEG 95, 90, 75, 50; "
               "0.5x and back; PNG -> JPEG 85 -> 0.75x) and classified zero-shot: the share read as the target "
               "and the cosine to it, with PSNR and time per step as the cost. The nearest published anchor, "
               "Adversarial Illusions (USENIX Security 2024), reports embedding attacks falling from 99% to 4% "
               "under JPEG.",
        work=survival_work,
        metrics=("pairs", "plain_png", "plain_jpeg75", "plain_jpeg50", "survive_png", "survive_jpeg75",
                 "survive_jpeg50", "survive_screenshot", "gain_jpeg75", "psnr_db_mean_plain", "psnr_db_mean_survive",
                 "psnr_gap_db", "time_per_step_ratio"))
def fig21(ctx):
    knobs = ctx.knobs
    sources, names, targets, _, classes, target_classes = shared.pair_images(ctx, knobs)
    side = knobs["side"]
    square = [ImageOps.fit(to_pil(s), (side, side), Image.Resampling.BICUBIC) for s in sources]
    drawn = [to_pil(t).resize((side, side), Image.Resampling.BICUBIC) for t in targets]
    pairs = [LabelledPair(s, t, name, c) for s, name in zip(square, names) for t, c in zip(drawn, target_classes)]
    plain = ctx.settings(knobs["settings"])
    runs = {}
    for label, settings in (("plain", plain), ("survive", replace(plain, survive=tuple(knobs["survive"])))):
        runs[label] = read_as_target(ctx.model("main"), pairs, {"classes": classes}, settings,
                                     seed=ctx.profile.seed, codecs=CODECS, progress=ctx.stage(label))
    shares = {f"{k} ({'+'.join(knobs['survive'])})" if k == "survive" else k:
              [r["survival"][c]["target_top1_classes"] for c in CODECS] for k, r in runs.items()}
    cosines = {name: [r["survival"][c]["cos_to_target_mean"] for c in CODECS]
               for name, r in zip(shares, runs.values())}
    fig, data = plots.survival_figure(shares, cosines, [SHOWN[c] for c in CODECS],
                                      title=f"{len(pairs)} pairs, L-inf {255 * plain.budget:.0f}/255, "
                                            f"{plain.steps} steps: plain vs transformation-aware")
    read = {k: {c: r["survival"][c]["target_top1_classes"] for c in CODECS} for k, r in runs.items()}
    metrics = {"pairs": len(pairs), **{f"{k}_{c}": read[k][c] for k in runs for c in CODECS},
               "gain_jpeg75": read["survive"]["jpeg75"] - read["plain"]["jpeg75"],
               "psnr_db_mean_plain": runs["plain"]["psnr_db_mean"],
               "psnr_db_mean_survive": runs["survive"]["psnr_db_mean"],
               "psnr_gap_db": runs["plain"]["psnr_db_mean"] - runs["survive"]["psnr_db_mean"],
               "time_per_step_ratio": runs["survive"]["seconds_per_step"] / runs["plain"]["seconds_per_step"],
               "steps": plain.steps, "survive": list(knobs["survive"])}
    return Output([[("survival", fig, data)]], metrics)
