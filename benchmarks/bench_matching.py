"""Embedding matching: probe's `paper` and `fast` modes against each other, against the bare model and against
two peers, on the same model, image pair and budget, all in one run.

1. Per-step overhead. Per-step time of `probe.matching.match` (batch of 1 pair, stopping rule that cannot
   trigger, the first W steps dropped as warm-up) divided by the bare forward + backward of the same model on
   the same input (`x.requires_grad_(); emb = encoder(x)` [fast] or `encoder.embed_normalized(x)` [paper];
   MSE loss; `torch.autograd.grad`). Both take one timestamp per step (after a CUDA synchronise on the GPU;
   `match` itself syncs each step when it checks its stopping rule). R rounds, the four measurements
   interleaved in a rotating order so that a load spike hits all of them alike; each round gives the median
   step time of each, and the table shows the median over rounds. Target: ratio <= 1.05.
2. Steps and seconds to cut the L2 distance between the source's and the target's embeddings by 99% under
   L-inf <= 8/255 in [0,1] pixels: `paper` (the authors' parts plus the budget, stopped by
   RelativeStop(0.01)) and `fast` (`fast_parts(budget=8/255, rel_l2_below=0.01)`), each with a step cap.
   Target: `fast` >= 10x fewer steps than `paper`.
3. Peers on the same pixel-space encoder, pair and budget: ART's FeatureAdversariesPyTorch (its default PGD,
   and its Adam variant) and advertorch's FastFeatureAttack. They have no stopping rule, so they run their
   full iteration count; every forward pass on the iterate is recorded to find the first iterate that met the
   goal (its seconds are interpolated: total x evaluations so far / all evaluations).

Every method gets the same 224 x 224 [0,1] source (the photo resized and centre-cropped by the encoder's own
preprocessing, then clamped to [0,1]) and the same target embedding (of the target photo prepared the same
way). "L2 reduction" is 1 - ||f(x) - t|| / ||f(source) - t|| on the image each method returns, recomputed
here with the same encoder for all, and again after 8-bit quantisation (what a saved PNG holds).

    python benchmarks/bench_matching.py [--models tiny,vit-b-32] [--device cpu|cuda] [--cap-paper N]
        [--cap-fast N] [--cap-peers N] [--cap-extras N] [--extras auto|always|never] [--rounds N]
        [--timed-steps N] [--warmup N] [--threads N] [--pair cat:rocket] [--note TEXT] [--out benchmarks/results]
    python benchmarks/bench_matching.py --only-overhead ...   # re-measure 1. only, merged into the saved run
    python benchmarks/bench_matching.py --render              # rewrite matching.md from matching.json

Caps, rounds and step counts take one number for all models or one per model, e.g.
`--cap-paper tiny=3000,vit-b-32=200`. Progress goes to stderr, the markdown table to stdout. Results:
OUT/matching.json (one entry per device kind, the others kept) and OUT/matching.md, with machine, versions,
load average, seed, command and a fingerprint of the probe code that ran. On a shared CPU, `--threads 1`
(oversubscribed OpenMP threads made the tiny model ~20x slower here). On a GPU the paper's own cap is
`--cap-paper 15000`. Peers: `pip install -r benchmarks/requirements-peers.txt`.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {"tiny": "tiny", "vit-b-32": "openclip:ViT-B-32@random"}
IMAGES = {"cat": "examples/cat.png", "rocket": "examples/rocket.png", "coffee": "examples/coffee.png"}
BUDGET = 8 / 255
GOAL = 0.01          # L2 distance to the target at most 1% of the source's
TARGET_OVERHEAD = 1.05
TARGET_SPEEDUP = 10.0
DEFAULT_CAPS = {"paper": 3000, "fast": 300}
EXTRAS = (("probe fast, lr = budget/4", {"lr": BUDGET / 4}),      # fast_parts' alternatives (its default: Adam,
          ("probe fast, sign steps", {"optimizer": "sign"}))       # lr budget/8)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- small helpers ------------------------------------------------------------------------------


class Clock:
    """perf_counter after the device has finished its queued work."""

    def __init__(self, device):
        self.sync = torch.cuda.synchronize if device.type == "cuda" else None
        self.device = device

    def __call__(self) -> float:
        if self.sync is not None:
            self.sync(self.device)
        return time.perf_counter()

    def stamp(self) -> tuple[float, float]:
        """(wall, CPU time of this process): on the CPU, the second is what other users' load disturbs least."""
        wall = self()
        return wall, time.process_time()


def never(record, initial):
    """A stopping rule that cannot trigger (for timing a fixed number of steps)."""
    return torch.zeros_like(record["l2_to_target"], dtype=torch.bool)


def parse_caps(text: str | None, default: int, models: list[str]) -> dict[str, int]:
    """`N` for every model, or `model=N,model=N` (models not named keep the default)."""
    caps = {m: default for m in models}
    if not text:
        return caps
    if "=" not in text:
        return {m: int(text) for m in models}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name.strip() not in caps:
            raise SystemExit(f"--cap: unknown model {name.strip()!r} (models: {', '.join(models)})")
        caps[name.strip()] = int(value)
    return caps


def machine_info(device) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "device": str(device)}
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    else:
        info["device_name"] = f"{info['processor']}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    return info


def probe_sources() -> dict:
    """Which probe code ran: git HEAD, whether probe/ differs from it, and short hashes of the files timed here
    (taken right after they were imported, so a later edit of the tree does not change what is recorded)."""
    import hashlib
    import subprocess

    import probe.matching  # noqa: F401  (imported before hashing, so the hash is of the code that runs)
    import probe.metrics  # noqa: F401

    out: dict = {}
    try:
        git = ["git", "-C", str(ROOT)]
        out["git_head"] = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True,
                                         timeout=20).stdout.strip() or None
        status = subprocess.run(git + ["status", "--porcelain", "--", "probe"], capture_output=True, text=True,
                                timeout=20).stdout
        out["probe_differs_from_head"] = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        out["git_head"] = None
    for rel in ("probe/matching.py", "probe/metrics.py", "probe/models.py"):
        out[rel] = hashlib.sha256((ROOT / rel).read_bytes()).hexdigest()[:16]
    return out


def peer_versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("adversarial-robustness-toolbox", "advertorch"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# --- 1. per-step overhead -----------------------------------------------------------------------


def _diffs(stamps: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Per-step (wall, CPU) seconds from successive stamps."""
    return ([b[0] - a[0] for a, b in zip(stamps, stamps[1:])], [b[1] - a[1] for a, b in zip(stamps, stamps[1:])])


def bare_step_times(embed, x0, target, steps: int, clock: Clock) -> tuple[list[float], list[float]]:
    """Seconds of each of `steps` bare forward + backward passes (x.requires_grad_, embed, MSE, grad)."""
    from probe.matching import mse_loss

    x = x0.detach().clone().requires_grad_(True)
    stamps = [clock.stamp()]
    for _ in range(steps):
        emb = embed(x)
        loss = mse_loss(emb, target).sum()
        (grad,) = torch.autograd.grad(loss, x)
        del grad
        stamps.append(clock.stamp())
    return _diffs(stamps)


def match_step_times(encoder, source, target_emb, parts, clock: Clock) -> tuple[list[float], list[float]]:
    """Seconds between successive steps of probe.matching.match (one update + one forward/backward each)."""
    from probe.matching import match

    stamps: list[tuple[float, float]] = []
    match(encoder, source, target_emb, parts=parts, callback=lambda step, record: stamps.append(clock.stamp()))
    return _diffs(stamps)


def measure_overhead(encoder, source, target_emb, rounds_n: int, warm: int, timed: int, clock: Clock) -> dict:
    from probe.matching import fast_parts, paper_parts

    steps = warm + timed
    parts = {"paper": dataclasses.replace(paper_parts(budget=BUDGET, steps=steps), stop=never),
             "fast": dataclasses.replace(fast_parts(budget=BUDGET, steps=steps), stop=never)}
    x_pixel = encoder.to_model_input(source).clamp(0, 1)
    x_norm = encoder.preprocess(source)
    jobs = {
        "bare-pixel": lambda: bare_step_times(encoder, x_pixel, target_emb, steps, clock),
        "fast": lambda: match_step_times(encoder, source, target_emb, parts["fast"], clock),
        "bare-normalized": lambda: bare_step_times(encoder.embed_normalized, x_norm, target_emb, steps, clock),
        "paper": lambda: match_step_times(encoder, source, target_emb, parts["paper"], clock),
    }
    names = list(jobs)
    rounds: dict[str, list[float]] = {n: [] for n in names}
    rounds_cpu: dict[str, list[float]] = {n: [] for n in names}
    raw: dict[str, list[list[float]]] = {n: [] for n in names}
    for r in range(rounds_n):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            wall, cpu = jobs[name]()
            raw[name].append(wall[warm:])
            rounds[name].append(statistics.median(wall[warm:]))
            rounds_cpu[name].append(statistics.median(cpu[warm:]))
        log(f"    round {r + 1}/{rounds_n}: " + ", ".join(f"{n} {rounds[n][-1] * 1e3:.1f} ms" for n in names))
    med = {n: statistics.median(v) for n, v in rounds.items()}
    med_cpu = {n: statistics.median(v) for n, v in rounds_cpu.items()}
    out = {"warmup_steps": warm, "timed_steps": timed, "rounds": rounds_n,
           "median_step_s": med, "round_medians_s": rounds, "step_times_s": raw}
    if clock.sync is None:  # CPU time means something only for a CPU run
        out["median_step_cpu_s"] = med_cpu
        out["round_medians_cpu_s"] = rounds_cpu
    for mode, bare in (("paper", "bare-normalized"), ("fast", "bare-pixel")):
        per_round = [a / b for a, b in zip(rounds[mode], rounds[bare])]
        out[f"{mode}_ratio"] = med[mode] / med[bare]
        out[f"{mode}_ratio_per_round"] = per_round
        out[f"{mode}_ratio_median_of_rounds"] = statistics.median(per_round)
        out[f"{mode}_meets_target"] = out[f"{mode}_ratio"] <= TARGET_OVERHEAD
        if clock.sync is None:
            out[f"{mode}_ratio_cpu_time"] = med_cpu[mode] / med_cpu[bare]
    return out


# --- 2. and 3.: runs to the goal ----------------------------------------------------------------


def evaluate(encoder, images, source_px, target_emb, l2_source: float) -> dict:
    """The common yardstick, recomputed for every method's returned image."""
    from probe import metrics
    from probe.images import quantize

    with torch.no_grad():
        images = images.to(encoder.device, torch.float32)
        emb = encoder(images)
        emb_q = encoder(quantize(images))
    l2 = float(metrics.l2(emb, target_emb)[0])
    l2_q = float(metrics.l2(emb_q, target_emb)[0])
    linf = float(metrics.linf(images, source_px)[0])
    return {"l2": l2, "l2_8bit": l2_q, "reduction": 1 - l2 / l2_source, "reduction_8bit": 1 - l2_q / l2_source,
            "cos_to_target": float(metrics.cosine(emb, target_emb)[0]),
            "linf_pixel": linf, "linf_x255": linf * 255, "psnr_db": float(metrics.psnr(images, source_px)[0]),
            "in_box": bool(images.min() >= 0 and images.max() <= 1),
            "in_budget": bool(linf <= BUDGET + 1e-6 and images.min() >= 0 and images.max() <= 1)}


def progress_logger(label: str, cap: int, every_s: float = 20.0):
    """A match callback that logs the L2 reduction every `every_s` seconds."""
    state = {"t": time.perf_counter(), "l2_0": None}

    def callback(step, record):
        l2 = float(record["l2_to_target"][0])
        if state["l2_0"] is None:
            state["l2_0"] = l2
        now = time.perf_counter()
        if now - state["t"] >= every_s:
            state["t"] = now
            log(f"      {label}: step {step}/{cap}, L2 reduction {1 - l2 / state['l2_0']:.4f}")

    return callback


def run_probe(label: str, mode: str, parts, encoder, source, target_emb, source_px, l2_source, clock) -> dict:
    from probe.matching import match

    cap = parts.steps
    log(f"    {label}: up to {cap} steps ...")
    start = clock()
    result = match(encoder, source, target_emb, parts=parts, callback=progress_logger(label, cap))
    seconds = clock() - start
    l2_trace = result.trace["l2_to_target"][:, 0]
    steps = int(result.steps_run[0])
    reached = bool(result.converged[0])
    row = {"label": label, "method": f"probe {mode}", "kind": "probe", "settings": result.description,
           "cap": cap, "steps_run": steps, "evaluations": len(l2_trace), "seconds": seconds,
           "s_per_step": seconds / max(len(l2_trace), 1), "reached": reached,
           "steps_to_goal": steps if reached else None, "seconds_to_goal": seconds if reached else None,
           "best_reduction_in_trace": float(1 - l2_trace.min() / l2_source),
           "initial_l2_own": float(l2_trace[0]),
           "reduction_trace": (1 - l2_trace / l2_source).tolist(),
           **evaluate(encoder, result.images, source_px, target_emb, l2_source)}
    log(f"    {label}: {'reached' if reached else 'NOT reached'} after {steps} steps, {seconds:.1f} s, "
        f"L2 reduction {row['reduction']:.4f}, L-inf {row['linf_x255']:.2f}/255")
    return row


class Recorder(torch.nn.Module):
    """The encoder as a plain nn.Module for the peers, recording every forward pass on the iterate (the input
    that requires grad; the guide does not). A fresh one per run: ART leaves forward hooks on it."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.trace: list = []

    def forward(self, x):
        emb = self.encoder(x)
        if x.requires_grad:
            self.trace.append(emb.detach().clone())
        return emb


def import_advertorch():
    """advertorch 0.2.3 imports torch.autograd.gradcheck.zero_gradients (removed in torch 1.9). Put a stand-in
    there, local to this process, and import it; returns (module, note) or (None, error)."""
    gradcheck = importlib.import_module("torch.autograd.gradcheck")
    note = None
    if not hasattr(gradcheck, "zero_gradients"):
        def zero_gradients(x):
            if isinstance(x, torch.Tensor):
                if x.grad is not None:
                    x.grad.detach_()
                    x.grad.zero_()
            else:
                for item in x:
                    zero_gradients(item)

        gradcheck.zero_gradients = zero_gradients
        note = "imports after a stand-in for torch.autograd.gradcheck.zero_gradients (removed in torch 1.9)"
    try:
        attacks = importlib.import_module("advertorch.attacks")
    except Exception as err:  # report whatever it is
        return None, f"does not import with torch {torch.__version__}: {type(err).__name__}: {err}"
    return attacks, note


def peer_row(label, method, settings, recorder, images, seconds, encoder, target_emb, source_px, l2_source,
             iterations, note=None) -> dict:
    from probe import metrics

    final = evaluate(encoder, images, source_px, target_emb, l2_source)
    embs = torch.cat(recorder.trace) if recorder.trace else torch.empty(0, target_emb.shape[1])
    l2_seen = metrics.l2(embs, target_emb.expand(len(embs), -1)).cpu() if len(embs) else torch.empty(0)
    evals = len(l2_seen)  # the iterate after 0 .. evals-1 updates; the returned image (after all) comes last
    l2_trace = torch.cat([l2_seen, torch.tensor([final["l2"]])])
    hits = (l2_trace <= GOAL * l2_source).nonzero().flatten()
    first = int(hits[0]) if len(hits) else None
    row = {"label": label, "method": method, "kind": "peer", "settings": settings, "cap": iterations,
           "steps_run": iterations, "evaluations": evals, "seconds": seconds,
           "s_per_step": seconds / max(iterations, 1), "reached": first is not None, "steps_to_goal": first,
           "seconds_to_goal": None if first is None else seconds * min(first + 1, evals) / max(evals, 1),
           "best_reduction_in_trace": float(1 - l2_trace.min() / l2_source),
           "reduction_trace": (1 - l2_trace / l2_source).tolist(), "note": note, **final}
    log(f"    {label}: {iterations} iterations, {seconds:.1f} s, final L2 reduction {row['reduction']:.4f}, "
        f"first -99% at iterate {first}, L-inf {row['linf_x255']:.2f}/255")
    return row


def run_art(variant: str, encoder, source_px, guide_px, target_emb, l2_source, iterations, step, seed,
            clock) -> dict:
    import numpy as np

    label = f"ART FeatureAdversaries ({variant})"
    try:
        from art.attacks.evasion import FeatureAdversariesPyTorch
        from art.estimators.classification import PyTorchClassifier
    except Exception as err:
        return {"label": label, "method": label, "kind": "peer", "error": f"{type(err).__name__}: {err}"}
    recorder = Recorder(encoder)
    dev = encoder.device
    clf = PyTorchClassifier(model=torch.nn.Sequential(recorder), loss=torch.nn.MSELoss(),
                            input_shape=tuple(source_px.shape[1:]), nb_classes=target_emb.shape[1],
                            clip_values=(0.0, 1.0), preprocessing=None,
                            device_type="gpu" if dev.type == "cuda" else "cpu")
    if variant == "PGD":
        kwargs = {"step_size": step}
        settings = {"optimizer": "PGD (sign steps, its default)", "step_size": step}
    else:
        kwargs = {"optimizer": torch.optim.Adam, "optimizer_kwargs": {"lr": step}, "lambda_": 0.0}
        settings = {"optimizer": "torch.optim.Adam", "lr": step, "lambda_": 0.0}
    attack = FeatureAdversariesPyTorch(clf, delta=float(BUDGET), max_iter=iterations, batch_size=1,
                                       layer=-1, verbose=False, **kwargs)
    settings.update({"delta": BUDGET, "max_iter": iterations, "layer": -1, "loss": "sum of squares",
                     "random_start": False, "wrapper": "PyTorchClassifier(Sequential(encoder)), clip (0,1)"})
    x = source_px.detach().cpu().numpy().astype(np.float32)
    y = guide_px.detach().cpu().numpy().astype(np.float32)
    log(f"    {label}: {iterations} iterations ...")
    torch.manual_seed(seed)
    start = clock()
    adv = attack.generate(x, y)
    seconds = clock() - start
    images = torch.from_numpy(adv).to(dev)
    note = "recomputes the guide's features every iteration (one extra forward per step)"
    if variant == "Adam":
        note += "; projects onto the delta ball before each optimiser step, not after the last one, so the " \
                "returned image can exceed the budget"
    return peer_row(label, "ART " + variant, settings, recorder, images, seconds, encoder, target_emb, source_px,
                    l2_source, iterations, note=note)


def run_advertorch(encoder, source_px, guide_px, target_emb, l2_source, iterations, step, seed, clock) -> dict:
    label = "advertorch FastFeatureAttack"
    attacks, note = import_advertorch()
    if attacks is None:
        return {"label": label, "method": label, "kind": "peer", "error": note}
    recorder = Recorder(encoder)
    attack = attacks.FastFeatureAttack(recorder, eps=BUDGET, eps_iter=step, nb_iter=iterations,
                                       clip_min=0.0, clip_max=1.0)
    settings = {"loss": "MSELoss(sum) (its default)", "eps": BUDGET, "eps_iter": step, "nb_iter": iterations,
                "rand_init": True, "ord": "inf (sign steps)"}
    log(f"    {label}: {iterations} iterations ...")
    torch.manual_seed(seed)
    start = clock()
    images = attack.perturb(source_px.clone(), guide_px.clone())
    seconds = clock() - start
    return peer_row(label, "advertorch", settings, recorder, images, seconds, encoder, target_emb, source_px,
                    l2_source, iterations, note=note)


# --- one model ------------------------------------------------------------------------------------


def prepare(key: str, args, device):
    """The encoder, the source (native size) and, at model input size in [0,1], source and guide; the target
    embedding every method gets; the source's L2 distance to it."""
    from probe.images import load_image
    from probe.models import load_encoder

    spec = MODELS.get(key, key)
    log(f"== {key} ({spec})")
    encoder = load_encoder(spec, device=device)
    src_name, tgt_name = args.pair.split(":")
    source = load_image(ROOT / IMAGES.get(src_name, src_name))[None].to(device)
    target = load_image(ROOT / IMAGES.get(tgt_name, tgt_name))[None].to(device)
    source_px = encoder.to_model_input(source).clamp(0, 1)
    guide_px = encoder.to_model_input(target).clamp(0, 1)
    with torch.no_grad():
        target_emb = encoder(guide_px)
        l2_source = float((encoder(source_px) - target_emb).norm(dim=1)[0])
    return spec, encoder, source, source_px, guide_px, target_emb, l2_source


def overhead_for(key, encoder, source, target_emb, caps, clock) -> dict:
    rounds_n, warm, timed = caps["rounds"][key], caps["warmup"][key], caps["timed"][key]
    log(f"  per-step overhead: {rounds_n} rounds x ({warm} warm-up + {timed} timed steps) x 4, interleaved")
    return measure_overhead(encoder, source, target_emb, rounds_n, warm, timed, clock)


def bench_model(key: str, args, device, caps: dict, clock: Clock) -> dict:
    from probe.matching import RelativeStop, fast_parts, paper_parts

    spec, encoder, source, source_px, guide_px, target_emb, l2_source = prepare(key, args, device)
    src_name, tgt_name = args.pair.split(":")
    out = {"spec": spec, "model": encoder.describe(), "pair": {"source": src_name, "target": tgt_name},
           "l2_source_to_target": l2_source, "caps": {k: v[key] for k, v in caps.items()}}

    if not args.skip_overhead:
        out["overhead"] = overhead_for(key, encoder, source, target_emb, caps, clock)

    log("  matching to -99% L2 under L-inf 8/255")
    rows = []
    common = (encoder, source, target_emb, source_px, l2_source, clock)
    paper = dataclasses.replace(paper_parts(budget=BUDGET, steps=caps["paper"][key]), stop=RelativeStop(GOAL))
    rows.append(run_probe("probe paper (+ budget)", "paper", paper, *common))
    fast = fast_parts(budget=BUDGET, rel_l2_below=GOAL, steps=caps["fast"][key])
    rows.append(run_probe("probe fast", "fast", fast, *common))
    if args.extras == "always" or (args.extras == "auto" and not rows[-1]["reached"]):
        for label, options in EXTRAS:
            parts = fast_parts(budget=BUDGET, rel_l2_below=GOAL, steps=caps["extras"][key], **options)
            rows.append(run_probe(label, "fast", parts, *common) | {"extra": True, "options": options})
    if not args.skip_peers:
        iterations, step = caps["peers"][key], args.peer_step
        peer_common = (encoder, source_px, guide_px, target_emb, l2_source, iterations, step, args.seed, clock)
        rows.append(run_art("PGD", *peer_common))
        rows.append(run_art("Adam", *peer_common))
        rows.append(run_advertorch(*peer_common))
    out["runs"] = rows
    out["fast_vs_paper"] = {r["label"]: speedup(rows[0], r) for r in rows if r["method"] == "probe fast"}
    done = [r for r in rows if "reduction_trace" in r]
    k = min(r["cap"] for r in done)
    out["equal_steps"] = k
    for r in done:
        trace = r["reduction_trace"]
        r["reduction_at_equal_steps"] = trace[k] if len(trace) > k else trace[-1]
    return out


def speedup(paper: dict, fast: dict) -> dict:
    """How many times fewer steps fast needs than paper (a lower bound when paper hit its cap)."""
    if not fast["reached"]:
        return {"ratio": None, "bound": None, "text": "did not reach -99% within its cap", "meets_target": False}
    fast_steps = max(fast["steps_to_goal"], 1)
    if paper["reached"]:
        ratio = paper["steps_to_goal"] / fast_steps
        return {"ratio": ratio, "bound": "exact", "text": f"{ratio:.1f}x fewer steps",
                "meets_target": ratio >= TARGET_SPEEDUP}
    ratio = paper["cap"] / fast_steps
    return {"ratio": ratio, "bound": "lower", "text": f"> {ratio:.1f}x fewer steps (paper not there at its cap)",
            "meets_target": True if ratio >= TARGET_SPEEDUP else None}


# --- markdown -------------------------------------------------------------------------------------


def _fmt(value, spec=".1f", none="-"):
    return none if value is None else format(value, spec)


def _settings(settings: dict) -> str:
    """`key value` pairs, with multiples of 1/255 written as k/255."""
    def show(v):
        if isinstance(v, float) and abs(v * 255 - round(v * 255)) < 1e-9 and v != 0:
            return f"{round(v * 255)}/255"
        return str(v)
    return "; ".join(f"{k} {show(v)}" for k, v in settings.items())


def _sources(src: dict) -> str:
    head = (src.get("git_head") or "?")[:10]
    dirty = " + uncommitted changes in probe/" if src.get("probe_differs_from_head") else ""
    files = ", ".join(f"{k.removeprefix('probe/')} {v}" for k, v in src.items() if k.startswith("probe/"))
    return f"git {head}{dirty} (sha256: {files})"


def _pct(value):
    return "-" if value is None else f"{value * 100:.2f}%"


def markdown(runs: dict) -> str:
    lines = ["# Embedding matching (benchmarks/bench_matching.py)", "",
             "Same model, image pair, target embedding and budget for every method: the source and target "
             "photos resized and centre-cropped to the model input by the encoder's own preprocessing, in [0,1] "
             "pixels; budget L-inf <= 8/255 in [0,1] pixels; goal: the L2 distance between the embeddings cut "
             "by 99% (to <= 1% of the source's). **L2 reduction** = 1 - L2(returned image) / L2(source), "
             "recomputed here for every method (float image, and after 8-bit quantisation). **Overhead** = "
             "median per-step time of `match` / median bare forward + backward of the same model on the same "
             "input (pixel space for fast, normalised space for paper), measured interleaved in the same run; "
             "target <= 1.05. Speed target: fast needs >= 10x fewer steps than paper. Peers run their full "
             "iteration count (no stopping rule); their steps to -99% are the first iterate that met it, "
             "seconds interpolated.", ""]
    for device_key, run in runs.items():
        m = run["machine"]
        lines += [f"## {device_key}: {m['device_name']}", "",
                  f"torch {m['torch']}, Python {m['python']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch "
                  f"threads; {run['date']}; load average {run['load_before']} before, {run['load_after']} after "
                  f"(other users share this machine's cores in a CPU run); pair {run['pair']}; seed {run['seed']}; "
                  f"wall time {run['wall_s']:.0f} s; command `{run['command']}`.", ""]
        if run.get("probe_sources"):
            lines += [f"probe code: {_sources(run['probe_sources'])}.", ""]
        if run.get("note"):
            lines += [f"Note: {run['note']}", ""]
        models = run["models"]
        if any("overhead" in r for r in models.values()):
            lines += ["### Per-step overhead of `match` (batch of 1 pair)", "",
                      "| model | mode | rounds x steps (+ warm-up) | bare fwd+bwd (ms) | match step (ms) | overhead | "
                      "per-round ratios | overhead in CPU time | <= 1.05 |", "|---|---|---|---|---|---|---|---|---|"]
            for key, res in models.items():
                o = res.get("overhead")
                if not o:
                    continue
                for mode, bare in (("paper", "bare-normalized"), ("fast", "bare-pixel")):
                    rounds = ", ".join(f"{v:.3f}" for v in o[f"{mode}_ratio_per_round"])
                    cpu = o.get(f"{mode}_ratio_cpu_time")
                    lines.append(f"| {key} | {mode} | {o['rounds']} x {o['timed_steps']} (+{o['warmup_steps']}) | "
                                 f"{o['median_step_s'][bare] * 1e3:.2f} | {o['median_step_s'][mode] * 1e3:.2f} | "
                                 f"**{o[f'{mode}_ratio']:.3f}** | {rounds} | {_fmt(cpu, '.3f')} | "
                                 f"{'yes' if o[f'{mode}_meets_target'] else 'no'} |")
            separate: dict[str, list] = {}  # overhead re-measured by --only-overhead, grouped by command
            for key, res in models.items():
                extra = (res.get("overhead") or {}).get("run")
                if extra:
                    separate.setdefault(extra["command"], []).append((key, extra))
            for command, items in separate.items():
                extra = items[0][1]
                loads = ", ".join(f"{k} {e['load_before']} -> {e['load_after']}" for k, e in items)
                lines += ["", f"Overhead of {', '.join(k for k, _ in items)} re-measured on its own ({extra['date']}, "
                          f"{extra['torch_threads']} threads, load average {loads}; probe code "
                          f"{_sources(extra['probe_sources'])}" + (f"; {extra['note']}" if extra.get("note") else "")
                          + f"): `{command}`."]
            lines += ["", "Interleaved rounds; each round's median step, then the median over rounds (wall time; "
                      "the verdict uses it). CPU time (this process's, CPU runs only) is less disturbed by other "
                      "users' load. Both modes with the 8/255 budget; paper's bare pass is in normalised space.", ""]
        for key, res in models.items():
            lines += [f"### {key} ({res['spec']}, {res['model']['weights']}): {res['pair']['source']} -> "
                      f"{res['pair']['target']}, L2(source, target) = {res['l2_source_to_target']:.4g}", "",
                      "| method | steps to -99% | seconds to -99% | steps run (cap) | seconds | ms/step | "
                      f"L2 reduction | after 8-bit | at step {res['equal_steps']} | L-inf (x/255) | budget held |",
                      "|---|---|---|---|---|---|---|---|---|---|---|"]
            for r in res["runs"]:
                if "error" in r:
                    lines.append(f"| {r['label']} | {r['error']} |  |  |  |  |  |  |  |  |  |")
                    continue
                steps_goal = "not reached" if not r["reached"] else str(r["steps_to_goal"])
                lines.append(
                    f"| {r['label']} | {steps_goal} | {_fmt(r['seconds_to_goal'])} | {r['steps_run']} ({r['cap']}) | "
                    f"{r['seconds']:.1f} | {r['s_per_step'] * 1e3:.1f} | {r['reduction'] * 100:.2f}% | "
                    f"{r['reduction_8bit'] * 100:.2f}% | {_pct(r['reduction_at_equal_steps'])} | "
                    f"{r['linf_x255']:.2f} | {'yes' if r['in_budget'] else '**no**'} |")
            lines += ["", f"Steps to -99%: the probe modes stop there; peers: first iterate that got there. "
                      f"'at step {res['equal_steps']}': L2 reduction after that many updates (the smallest cap "
                      "in the table; runs that stopped earlier keep their last value), to compare at equal work.",
                      ""]
            for label, sp in res["fast_vs_paper"].items():
                verdict = {True: "meets", False: "misses", None: "cannot tell at this cap"}[sp["meets_target"]]
                lines.append(f"- {label} vs paper: {sp['text']}; target >= 10x fewer steps: {verdict}.")
            lines.append("")
            notes = [f"- {r['label']}: {_settings(r['settings'])}" for r in res["runs"] if "settings" in r
                     and r["kind"] == "peer"]
            notes += [f"- {r['label']}: {r['note']}" for r in res["runs"] if r.get("note")]
            if notes:
                lines += ["Peer settings and notes:", ""] + notes + [""]
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,vit-b-32", help=f"comma-separated: {', '.join(MODELS)} or specs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pair", default="cat:rocket", help="SOURCE:TARGET, names from examples/ or paths")
    parser.add_argument("--cap-paper", default=None, help=f"step cap of paper mode (default {DEFAULT_CAPS['paper']})")
    parser.add_argument("--cap-fast", default=None, help=f"step cap of fast mode (default {DEFAULT_CAPS['fast']})")
    parser.add_argument("--cap-peers", default=None, help="iterations of each peer (default: the fast cap)")
    parser.add_argument("--cap-extras", default=None, help="step cap of the extra fast rows (default: the fast cap)")
    parser.add_argument("--peer-step", type=float, default=BUDGET / 8,
                        help="step size of the peers (default budget/8 = 1/255, fast mode's default lr)")
    parser.add_argument("--extras", choices=("auto", "always", "never"), default="auto",
                        help="extra fast rows (lr budget/4; sign steps); auto: only where fast misses the goal")
    parser.add_argument("--rounds", default="5", help="interleaved rounds of the overhead measurement")
    parser.add_argument("--timed-steps", default="30", help="timed steps per overhead measurement")
    parser.add_argument("--warmup", default="3", help="warm-up steps dropped from each overhead measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--only-overhead", action="store_true",
                        help="re-measure only the per-step overhead of the given models and merge it into this "
                             "device's existing entry in OUT/matching.json (with its own date, load and sources)")
    parser.add_argument("--note", default=None, help="a line stored with this run and shown under its heading")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--render", action="store_true", help="only rewrite OUT/matching.md from OUT/matching.json")
    args = parser.parse_args()
    if args.render:
        from probe.results import write_bytes

        text = markdown(json.loads((Path(args.out) / "matching.json").read_text()))
        write_bytes(Path(args.out) / "matching.md", (text + "\n").encode())
        print(text)
        return 0

    from probe.models import resolve_device
    from probe.results import package_versions

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    clock = Clock(device)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    caps = {"paper": parse_caps(args.cap_paper, DEFAULT_CAPS["paper"], models),
            "fast": parse_caps(args.cap_fast, DEFAULT_CAPS["fast"], models)}
    caps["peers"] = parse_caps(args.cap_peers, 0, models) if args.cap_peers else dict(caps["fast"])
    caps["extras"] = parse_caps(args.cap_extras, 0, models) if args.cap_extras else dict(caps["fast"])
    caps["rounds"] = parse_caps(args.rounds, 5, models)
    caps["timed"] = parse_caps(args.timed_steps, 30, models)
    caps["warmup"] = parse_caps(args.warmup, 3, models)
    wall = time.perf_counter()
    sources = probe_sources()
    command = "python " + shlex.join([Path(sys.argv[0]).as_posix().replace(ROOT.as_posix() + "/", "")] + sys.argv[1:])
    out = Path(args.out)
    path = out / "matching.json"
    if args.only_overhead:
        return only_overhead(args, device, caps, clock, models, path, command, sources, wall)
    run = {"machine": machine_info(device), "versions": {**package_versions(), **peer_versions()},
           "probe_sources": sources, "note": args.note,
           "date": time.strftime("%Y-%m-%d %H:%M"), "command": command,
           "load_before": round(os.getloadavg()[0], 2), "pair": args.pair, "seed": args.seed,
           "budget": BUDGET, "goal_fraction": GOAL, "targets": {"overhead": TARGET_OVERHEAD,
                                                                "fast_vs_paper_steps": TARGET_SPEEDUP},
           "models": {}}
    log(f"device {run['machine']['device_name']}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load {run['load_before']}")
    for key in models:
        run["models"][key] = bench_model(key, args, device, caps, clock)
    run["load_after"] = round(os.getloadavg()[0], 2)
    run["wall_s"] = time.perf_counter() - wall

    runs = json.loads(path.read_text()) if path.is_file() else {}
    runs[device.type] = run
    save(runs, out, run["wall_s"])
    return 0


def save(runs: dict, out: Path, wall_s: float) -> None:
    from probe.results import write_bytes, write_json

    write_json(out / "matching.json", runs)
    text = markdown(runs)
    write_bytes(out / "matching.md", (text + "\n").encode())
    print(text)
    log(f"wrote {out / 'matching.json'} and {out / 'matching.md'} in {wall_s:.0f} s")


def only_overhead(args, device, caps, clock, models, path, command, sources, wall) -> int:
    runs = json.loads(path.read_text()) if path.is_file() else {}
    entry = runs.get(device.type)
    missing = [k for k in models if entry is None or k not in entry["models"]]
    if missing:
        raise SystemExit(f"--only-overhead: no {device.type} entry for {', '.join(missing)} in {path}; "
                         "run the full benchmark first")
    for key in models:
        load_before = round(os.getloadavg()[0], 2)
        _, encoder, source, _, _, target_emb, _ = prepare(key, args, device)
        result = overhead_for(key, encoder, source, target_emb, caps, clock)
        result["run"] = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": command, "load_before": load_before,
                         "load_after": round(os.getloadavg()[0], 2), "torch_threads": torch.get_num_threads(),
                         "probe_sources": sources, "note": args.note}
        entry["models"][key]["overhead"] = result
    save(runs, path.parent, time.perf_counter() - wall)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
