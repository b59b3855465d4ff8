"""Build Hugging Face Hub cache entries and local model folders offline, the way the Hub lays them out."""
from pathlib import Path

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def put_in_hub_cache(cache: str, repo_id: str, files: dict[str, Path | bytes]) -> Path:
    """Write files as snapshot FAKE_COMMIT of model repo `repo_id` with refs/main pointing at it."""
    root = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    snapshot = root / "snapshots" / FAKE_COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.read_bytes() if isinstance(content, Path) else content
        (snapshot / name).write_bytes(data)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(FAKE_COMMIT)
    return snapshot


def folder_files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in Path(folder).iterdir() if p.is_file()}


def write_clip_tokenizer(folder: Path) -> None:
    """A byte-level CLIP BPE vocabulary with no merges (every character a token), saved by the real
    CLIPTokenizer: enough to run the transformers text path offline. Ids 512/513 are start/end."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    CLIPTokenizer(vocab={tok: i for i, tok in enumerate(vocab)}, merges=[]).save_pretrained(folder)
