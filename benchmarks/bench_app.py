"""How long a visitor waits: the app's default match, one client alone and 8 clients at once.

Launches app.py's Blocks on 127.0.0.1 (settings from space_config.yml for this machine's hardware; offline this
is the shipped mini-CLIP) and calls `/match` with its defaults through gradio_client: time to the first streamed
update (the live curves start), to the result, and the queue's effect with 8 concurrent clients. Prints a
markdown table and saves it with the machine, load and versions under benchmarks/results/app.{md,json}.

    .venv/bin/python benchmarks/bench_app.py [--clients 8] [--steps N] [--model NAME]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import statistics
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SOURCE, TARGET = ROOT / "examples" / "cat.png", ROOT / "examples" / "shapes" / "blue_star.png"


def one_client(url: str, model: str, steps: int | None, record: list, errors: list) -> None:
    from gradio_client import Client, handle_file

    try:
        start = time.perf_counter()
        client = Client(url, verbose=False)
        options = {"steps": steps} if steps else {}
        job = client.submit(source=handle_file(str(SOURCE)), target=handle_file(str(TARGET)), model=model,
                            api_name="/match", **options)
        first = None
        for _ in job:
            first = first or time.perf_counter() - start
        summary = job.result()[-1]
        record.append({"first_update_s": first, "result_s": time.perf_counter() - start,
                       "steps": summary["steps_run"], "cos_to_target_png": summary["cos_to_target_png"]})
    except Exception as err:  # reported in the table
        errors.append(repr(err))


def run(url: str, model: str, steps: int | None, clients: int) -> dict:
    record, errors = [], []
    threads = [threading.Thread(target=one_client, args=(url, model, steps, record, errors)) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"clients": clients, "wall_s": time.perf_counter() - start, "errors": errors, "runs": record}


def load_app_module():
    """The repo's app.py, imported by its path (it is a script beside the package, not part of it)."""
    spec = importlib.util.spec_from_file_location("app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    app_module = load_app_module()
    from probe.files import write_bytes, write_json
    from probe.results import provenance

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="default: the app's default steps")
    parser.add_argument("--model", default=None, help="default: the app's default model here")
    args = parser.parse_args()
    app = app_module.create_app()
    demo = app_module.build(app)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    model = args.model or app.default_model
    steps = args.steps or app.config.default_steps
    try:
        alone = run(url, model, steps, 1)
        crowd = run(url, model, steps, args.clients)
    finally:
        demo.close()

    def row(name: str, result: dict) -> str:
        runs = result["runs"]
        first = [r["first_update_s"] for r in runs]
        done = [r["result_s"] for r in runs]
        return (f"| {name} | {statistics.median(first):.1f} s (max {max(first):.1f}) | {statistics.median(done):.1f} s "
                f"(max {max(done):.1f}) | {len(runs)}/{result['clients']} | {min(r['cos_to_target_png'] for r in runs):.3f} |")

    load = os.getloadavg()
    lines = [f"Default match in the app ({model}, {steps} steps, fast mode, cat -> blue star at 320 x 213), "
             f"{app.config.limits.concurrent_jobs} jobs at once, {os.cpu_count()} CPU cores, load average "
             f"{load[0]:.1f} at the end", "",
             "| clients | first streamed update (median) | result (median) | finished | min cos to target (PNG) |",
             "|---|---|---|---|---|", row("1", alone), row(str(args.clients), crowd)]
    text = "\n".join(lines) + "\n"
    print(text)
    write_bytes(RESULTS / "app.md", text.encode())
    write_json(RESULTS / "app.json", provenance(model=model, steps=steps, device=app.device, alone=alone,
                                                crowd=crowd, load_average=load,
                                                concurrent_jobs=app.config.limits.concurrent_jobs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
