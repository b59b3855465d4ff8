"""repro: regenerate the figures of arXiv:2401.15568 (Salman, Shams, Liu, 2024) with the numbers behind them,
check them against what the paper and its sister papers report, resume interrupted runs, and scale the long
sweeps out on Ray.

    python -m repro list                      # every figure: id, title, claim, faithful or reconstruction
    python -m repro all --quick --out DIR     # all 21 figures offline on the CPU (mini-CLIP)
    python -m repro fig10 --profile paper --device cuda --out DIR [--engine ray --address auto]
    python -m repro check DIR                 # reproduced / not reproduced / not comparable, per figure

Recipes (`repro.figures`) only call `probe.experiments`, arrange figures and record numbers; the sweeps run in
shards through an engine (`repro.engines`); `repro.runner` writes DIR/figN.png, figN.json, manifest.json and
index.html.
"""
