"""Exact input Jacobian of random-init ViTs: probe.geometry against the stock PyTorch ways, same run.

For each model, each method runs in a fresh subprocess (so peak memory is its own):
  probe (math attention)       geometry.jacobian, chunked vmap over VJPs, the library default here
  probe (fused attention)      the same with the fused SDPA kernels, to justify the choice of backend
  autograd.functional          torch.autograd.functional.jacobian with default settings (one backward per row)
  jacrev, unchunked            torch.func.jacrev(f)(x) with default settings
  topk sigma_1 (1%)            geometry.topk_spectrum(k=1), matrix-free, stopped when sigma_1 is within 1%
Peak memory is the increase over the warmed-up process: VmHWM - VmRSS after resetting VmHWM
(/proc/self/clear_refs) on the CPU, max_memory_allocated - memory_allocated on CUDA. Slow methods can
be timed on the first R rows of J and extrapolated to all m (marked in the table). FLOPs of the exact
Jacobian come from torch.utils.flop_counter on 8- and 16-row Jacobians, extrapolated linearly to m rows,
against the measured float32 matmul rate of the same device.

    python benchmarks/bench_jacobian.py [--device cpu|cuda] [--models ViT-S-32,ViT-B-32] [--slow-rows R]

Results: benchmarks/results/jacobian.json (one entry per device, others kept) and jacobian.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the results folder and the workers' cwd (probe is installed)
RESULTS = ROOT / "benchmarks" / "results"
METHODS = ("probe-math", "probe-fused", "autograd-functional", "jacrev", "topk")
LABELS = {"probe-math": "probe (math attention)", "probe-fused": "probe (fused attention)",
          "autograd-functional": "autograd.functional.jacobian", "jacrev": "jacrev, unchunked",
          "topk": "topk sigma_1 (1%)"}
SIGMA1_TOL = 0.0199  # Ritz residual <= tol * sigma_1^2 bounds the sigma_1 error by 1 - sqrt(1 - tol) < 1%


# --- worker: one method in a fresh process ------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMemory:
    """Peak bytes allocated beyond the state at entry (CPU: resident set; CUDA: allocator)."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current resident set
            self.base = _status_kib("VmRSS")
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.peak = _status_kib("VmHWM") - self.base
        self.seconds = time.perf_counter() - self.start


def _restricted(f, rows: int):
    return lambda x: f(x)[:, :rows]


def count_jacobian_flops(geometry, emap, m: int) -> float:
    """FLOPs of the full exact Jacobian: counted on 8 and 16 rows, extrapolated linearly to m."""
    from torch.utils.flop_counter import FlopCounterMode

    counts = []
    for rows in (8, 16):
        with FlopCounterMode(display=False) as counter:
            geometry.jacobian(_restricted(emap.f, rows), emap.x0, chunk_size=rows)
        counts.append(counter.get_total_flops())
    per_row = (counts[1] - counts[0]) / 8
    return counts[0] + (m - 8) * per_row


def matmul_rate(device) -> float:
    """Best float32 matmul FLOP/s of a few square products on this device."""
    import torch

    size = 4096 if device.type == "cuda" else 2048
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    best = math.inf
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10 if device.type == "cuda" else 2):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / (10 if device.type == "cuda" else 2))
    return 2 * size**3 / best


def worker(method: str, model: str, device_name: str, rows: int | None) -> dict:
    import torch

    from probe import geometry
    from probe.models import load_encoder

    encoder = load_encoder(f"openclip:{model}@random", device=device_name)
    device = encoder.device
    image = torch.rand(3, 224, 224, generator=torch.Generator().manual_seed(0))
    emap = geometry.embedding_map(encoder, image, "normalized")
    f1 = lambda x: emap.f(x[None])[0]  # noqa: E731
    with torch.enable_grad():  # warm-up: one forward and backward
        x = emap.x0.clone().requires_grad_(True)
        f1(x).sum().backward()
    m, n = f1(emap.x0).numel(), emap.x0.numel()
    rows = min(rows or m, m)
    out = {"method": method, "model": model, "m": m, "n": n, "rows": rows, "jacobian_bytes": m * n * 4}
    if method in ("probe-math", "probe-fused"):
        attention = "math" if method == "probe-math" else "default"
        f = emap.f if rows == m else _restricted(emap.f, rows)
        chunk = geometry.auto_chunk_size(f, emap.x0, rows)  # what jacobian() picks inside, for the record
        with PeakMemory(device) as peak:
            J = geometry.jacobian(f, emap.x0, attention=attention)
        out.update(seconds=peak.seconds, peak_bytes=peak.peak, chunk_size=chunk)
        if method == "probe-math" and rows == m:
            start = time.perf_counter()
            spectrum = geometry.exact_spectrum(J)
            out["spectrum_seconds"] = time.perf_counter() - start
            out["sigma_1"] = float(spectrum.singular_values[0])
            out["numerical_rank"] = spectrum.numerical_rank
            out["flops"] = count_jacobian_flops(geometry, emap, m)
            out["matmul_flops_per_s"] = matmul_rate(device)
    elif method == "autograd-functional":
        f = f1 if rows == m else (lambda x: f1(x)[:rows])
        with PeakMemory(device) as peak:
            torch.autograd.functional.jacobian(f, emap.x0)
        out.update(seconds=peak.seconds, peak_bytes=peak.peak)
    elif method == "jacrev":
        f = f1 if rows == m else (lambda x: f1(x)[:rows])
        with PeakMemory(device) as peak:
            torch.func.jacrev(f)(emap.x0)
        out.update(seconds=peak.seconds, peak_bytes=peak.peak)
    else:
        with PeakMemory(device) as peak:
            spectrum = geometry.topk_spectrum(emap.f, emap.x0, k=1, tol=SIGMA1_TOL, block=1)
        out.update(seconds=peak.seconds, peak_bytes=peak.peak, sigma_1=float(spectrum.singular_values[0]),
                   products=spectrum.info["products"], rows=m)
    if rows < m and method != "topk":
        out["measured_seconds"] = out["seconds"]
        out["seconds"] = out["seconds"] * m / rows
        out["extrapolated"] = True
    return out


# --- driver -------------------------------------------------------------------------------------


def run_worker(method: str, model: str, device: str, rows: int | None, timeout: float) -> dict:
    command = [sys.executable, __file__, "--worker", method, "--models", model, "--device", device]
    if rows:
        command += ["--rows", str(rows)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"method": method, "model": model, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"method": method, "model": model, "error": tail[:200]}
    return json.loads(lines[-1])


def _mib(value: float) -> str:
    return f"{value / 2**20:,.0f}"


def markdown(runs: dict) -> str:
    lines = ["# Exact input Jacobian of random-init ViTs (benchmarks/bench_jacobian.py)", "",
             "Normalised input space, one 224 x 224 image. Peak memory is the increase over the warmed-up "
             "process (CPU: resident set, CUDA: allocator). `*` = timed on the first R rows of J and "
             "scaled to all m rows (one backward per row, so time is linear in rows; its memory is for R "
             "rows). Targets: probe >= 3x faster than autograd.functional.jacobian, peak <= 2x |J|; "
             "matrix-free sigma_1 (within 1%) >= 3x faster than the exact Jacobian + spectrum.", ""]
    for device, run in runs.items():
        lines += [f"## {device}: {run['hardware']}", "", f"torch {run['torch']}. The load column is the "
                  "1-minute load average when the method started (on the CPU, other users' jobs share "
                  "the cores, so compare rows with similar load).", ""]
        for model, results in run["models"].items():
            ours = results.get("probe-math", {})
            lines += [f"### {model}: J is {ours.get('m', '?')} x {ours.get('n', '?')} "
                      f"({_mib(ours.get('jacobian_bytes', 0))} MiB float32)", "",
                      "| method | time (s) | speed-up of probe | peak extra memory (MiB) | peak / J size | load "
                      "| notes |",
                      "|---|---|---|---|---|---|---|"]
            for method in METHODS:
                r = results.get(method)
                if not r:
                    continue
                if "error" in r:
                    lines.append(f"| {LABELS[method]} | - | - | - | - | - | failed: {r['error']} |")
                    continue
                reference = ours.get("seconds") if method != "topk" else \
                    ours.get("seconds", math.nan) + ours.get("spectrum_seconds", 0.0)
                speed = (r["seconds"] / reference if method != "topk" else reference / r["seconds"])
                star = "*" if r.get("extrapolated") else ""
                notes = []
                if r.get("extrapolated"):
                    notes.append(f"R = {r['rows']} rows in {r['measured_seconds']:.1f} s")
                if "chunk_size" in r:
                    notes.append(f"chunk {r['chunk_size']}")
                if method == "probe-math" and "flops" in r:
                    rate = r["flops"] / r["seconds"]
                    notes.append(f"{r['flops'] / 1e12:.2f} TFLOP, {rate / 1e9:.1f} GFLOP/s = "
                                 f"{rate / r['matmul_flops_per_s']:.0%} of matmul "
                                 f"({r['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s); spectrum "
                                 f"{r['spectrum_seconds']:.2f} s, rank {r['numerical_rank']}")
                if method == "topk":
                    error = abs(r["sigma_1"] / ours.get("sigma_1", math.nan) - 1)
                    notes.append(f"{r['products']} products, sigma_1 error {error:.2%}; speed-up vs "
                                 "exact J + spectrum")
                speed_text = "1.0x" if method == "probe-math" else f"{speed:.1f}x"
                lines.append(f"| {LABELS[method]} | {r['seconds']:.1f}{star} | {speed_text} | "
                             f"{_mib(r['peak_bytes'])} | {r['peak_bytes'] / r['jacobian_bytes']:.2f} | "
                             f"{r.get('load_before', '-')} | {'; '.join(notes)} |")
            lines.append("")
    return "\n".join(lines)


def hardware(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default="ViT-S-32,ViT-B-32", help="comma-separated OpenCLIP architectures")
    parser.add_argument("--slow-rows", type=int, default=None,
                        help="rows timed for autograd.functional and fused attention (default: 128 on the "
                             "CPU, all on CUDA)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated subset to (re)run; the other results of this device are kept")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per method")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.models, args.device, args.rows)))
        return 0

    import torch

    methods = [m for m in METHODS if m in args.methods.split(",")]
    device_key = "cuda" if args.device.startswith("cuda") else "cpu"
    path = RESULTS / "jacobian.json"
    runs = json.loads(path.read_text()) if path.is_file() else {}
    run = runs.get(device_key, {"models": {}})
    run.update(hardware=hardware(args.device), torch=torch.__version__)
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        slow = args.slow_rows or (128 if device_key == "cpu" else None)
        results = run["models"].setdefault(model, {})
        for method in methods:
            rows = slow if method in ("autograd-functional", "probe-fused") else None
            print(f"{model}: {LABELS[method]} ...", file=sys.stderr, flush=True)
            load = round(os.getloadavg()[0], 2)
            results[method] = {**run_worker(method, model, args.device, rows, args.timeout),
                               "load_before": load, "date": time.strftime("%Y-%m-%d %H:%M")}
            print(f"  {json.dumps(results[method])}", file=sys.stderr, flush=True)
    runs[device_key] = run
    RESULTS.mkdir(parents=True, exist_ok=True)
    from probe.files import write_bytes, write_json

    write_json(path, runs)
    text = markdown(runs)
    write_bytes(RESULTS / "jacobian.md", (text + "\n").encode())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
