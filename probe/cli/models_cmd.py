"""`python -m probe models`: presets, what they are, and whether their weights are on this machine."""
from probe.models import presets, weights_status


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list model presets and local weight availability")
    parser.set_defaults(func=run)


def run(args) -> int:
    print("Presets (use the name or the full spec with --model):")
    for name, preset in presets().items():
        print(f"  {name:<10} {preset.spec}\n  {'':<10} {preset.about}; weights: {weights_status(preset.spec)}")
    print("Any spec works too: openclip:ARCH@TAG|@random, openclip:hf-hub:ORG/NAME, "
          "openclip:local-dir:PATH, hf:ORG/NAME[@REV|@random], timm:NAME[@random|@local:FILE]")
    return 0
