"""`python -m probe match`: make a source image take on a target image's embedding.

Writes DIR/matched.png, DIR/source.png (the source at the same resolution), DIR/diff_x50.png (the paper's
amplified difference), DIR/trace.csv (every step) and DIR/summary.json (written last: its presence means
the run finished).
"""
from __future__ import annotations

import time

import torch

from probe import images, metrics
from probe.cli.common import add_model_args, existing_file, load_encoder_from_args, positive, prepare_out_dir
from probe.errors import ProbeError
from probe.results import provenance, write_csv, write_json


def register(subparsers) -> None:
    p = subparsers.add_parser("match", help="match a source image's embedding to a target image's",
                              description=__doc__)
    add_model_args(p)
    p.add_argument("--source", required=True, type=existing_file, help="image to change")
    p.add_argument("--target", required=True, type=existing_file, help="image whose embedding to take on")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--mode", choices=["paper", "fast"], default="fast",
                   help="paper: the authors' exact procedure; fast: optimise [0,1] pixels under a budget")
    p.add_argument("--steps", type=positive(int, "--steps"), help="iteration cap (paper 15000, fast 300)")
    p.add_argument("--lr", type=positive(float, "--lr"),
                   help="step size (paper 0.09; fast budget/8, or budget/4 for normalized steps)")
    p.add_argument("--optimizer", choices=["adam", "sign", "normalized"],
                   help="fast: update rule (default adam for --norm linf, normalized for --norm l2)")
    p.add_argument("--loss", choices=["mse", "cosine", "l2"], default="mse")
    p.add_argument("--budget", type=float, help="fast: pixel budget in (0,1] (default 8/255); "
                   "paper: optional extra budget (not in the paper)")
    p.add_argument("--norm", choices=["linf", "l2"], default="linf", help="budget norm")
    p.add_argument("--l2sq-below", type=float, default=16.0, help="paper stop: squared L2 below this")
    p.add_argument("--cos-above", type=float, default=0.96, help="paper stop: cosine above this")
    p.add_argument("--rel-l2-below", type=float, default=0.01,
                   help="fast stop: L2 to target at most this fraction of its start")
    p.add_argument("--resolution", choices=["model", "source"], default="model",
                   help="fast: optimise at the model's input size or at the source's own size")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _options(args) -> dict:
    if args.budget is not None and not 0 < args.budget <= 1:
        raise ProbeError(f"--budget must be in (0, 1] ([0,1]-pixel units), got {args.budget}")
    if args.mode == "paper" and args.optimizer:
        raise ProbeError("--optimizer is for --mode fast; the paper's procedure is plain gradient descent")
    if args.mode == "paper":
        opts = {"l2sq_below": args.l2sq_below, "cos_above": args.cos_above, "loss": args.loss,
                "budget": args.budget, "norm": args.norm}
    else:
        opts = {"norm": args.norm, "rel_l2_below": args.rel_l2_below, "loss": args.loss,
                "resolution": args.resolution, "optimizer": args.optimizer}
        if args.budget is not None:
            opts["budget"] = args.budget
    if args.steps is not None:
        opts["steps"] = args.steps
    if args.lr is not None:
        opts["lr"] = args.lr
    return opts


def run(args) -> int:
    from probe.matching import match

    out = prepare_out_dir(args.out)
    options = _options(args)
    source, target = images.load_image(args.source), images.load_image(args.target)
    encoder = load_encoder_from_args(args)
    start = time.perf_counter()
    result = match(encoder, source[None], target[None], mode=args.mode, seed=args.seed,
                   verbose=not args.quiet, **options)
    seconds = time.perf_counter() - start

    matched, src = result.images[0].cpu(), result.sources[0].cpu()
    write_csv(out / "trace.csv", result.trace_rows())
    images.save_png(src, out / "source.png")
    images.save_png((0.5 + 50 * (matched - src)).clamp(0, 1), out / "diff_x50.png")
    png_path = images.save_png(matched, out / "matched.png")
    png_emb = images.embedding_of_png(encoder, png_path)
    target_emb = result.target_embedding[0].to(png_emb.device)
    png_pixels = images.load_image(png_path)

    init, final = result.initial, result.final
    summary = provenance(
        model=encoder.spec, weights=encoder.weights, mode=args.mode, seed=args.seed,
        source=str(args.source), target=str(args.target), device=str(encoder.device),
        settings=result.description,
        steps_run=int(result.steps_run[0]), converged=bool(result.converged[0]), cancelled=result.cancelled,
        cos_to_target_initial=float(init["cos_to_target"][0]), cos_to_target_final=float(final["cos_to_target"][0]),
        cos_to_target_png=float(metrics.cosine(png_emb[None], target_emb[None])[0]),
        l2_to_target_initial=float(init["l2_to_target"][0]), l2_to_target_final=float(final["l2_to_target"][0]),
        l2_to_target_png=float(metrics.l2(png_emb[None], target_emb[None])[0]),
        cos_to_source_final=float(final["cos_to_source"][0]),
        linf_pixel=float(final["linf_pixel"][0]), l2_pixel=float(final["l2_pixel"][0]),
        mean_abs_pixel=float(final["mean_abs_pixel"][0]), psnr_db=float(final["psnr_db"][0]),
        psnr_db_png=float(metrics.psnr(png_pixels[None], src[None])[0]),
        resolution=list(matched.shape[-2:]), seconds=seconds,
    )
    write_json(out / "summary.json", summary)
    status = "converged" if summary["converged"] else "did NOT converge (best iterate saved)"
    print(f"{status} after {summary['steps_run']} steps in {seconds:.1f} s: cos to target "
          f"{summary['cos_to_target_initial']:.4f} -> {summary['cos_to_target_final']:.4f} "
          f"(PNG {summary['cos_to_target_png']:.4f}), L2 {summary['l2_to_target_initial']:.4g} -> "
          f"{summary['l2_to_target_final']:.4g}, L-inf pixel {summary['linf_pixel']:.4f}, "
          f"PSNR {summary['psnr_db']:.1f} dB")
    print(f"wrote {out}/matched.png, diff_x50.png, trace.csv, summary.json")
    return 0
