"""The app's test helpers: example files, a config with changed limits, the app launched on a free port."""
import socket
from pathlib import Path

import yaml

import app as app_module

ROOT = Path(__file__).resolve().parents[1]
CAT, COFFEE, ROCKET = (str(ROOT / "examples" / n) for n in ("cat.png", "coffee.png", "rocket.png"))
STAR, CIRCLE = (str(ROOT / "examples" / "shapes" / n) for n in ("blue_star.png", "red_circle.png"))
MINI = "mini-CLIP (offline, shapes and colours)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_file(tmp_path, **limits) -> Path:
    raw = yaml.safe_load((ROOT / "space_config.yml").read_text())
    raw["limits"].update(limits)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def launch(path: Path, **launch_options):
    app = app_module.create_app(str(path), device="cpu", hardware="cpu")
    demo = app_module.build(app)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                max_file_size=app.config.limits.max_upload_bytes, **launch_options)
    return demo, f"http://127.0.0.1:{port}/", app


