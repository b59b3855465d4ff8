"""One call per experiment: settings in, a result with `to_dict()`, figures and images out.

The CLI, `repro` and the app are thin shells over these calls, so the same call gives the same numbers
everywhere. Each call takes an Encoder (or a model spec, loaded on the CPU), its inputs (image files, PIL
images or [0,1] tensors), its settings, a seed, and a progress callback (`probe.progress`): returning False
from it stops the call, which returns what it finished, marked `cancelled`.

Every result has `to_dict()` (JSON-ready: settings, numbers, model and weights, provenance), `figures()`
(`(name, figure, data)` triples), `images()` (name -> [0,1] image) and `tables()` (name -> CSV rows);
`probe.results.save(result, folder)` writes them all, `summary.json` last. `headline()` is one line saying
what happened. A composite experiment owns all of its views: `match` reads its result back and classifies it
before and after, and shows it on the PCA view, so no front end assembles them.

| family (module) | call | what it runs |
|---|---|---|
| pairs | `match` | one source matched to one target (image or embedding), read back, classified before and after, PCA view |
| pairs | `equivalence` | many sources -> one target, or one source -> many targets: look-alikes and their embeddings |
| pairs | `match_text` | images matched to text embeddings (arXiv:2407.01157), then classified |
| pairs | `compare` | the same pairs under several settings or models: closeness per step and per second |
| geometry | `spectrum` | singular values of the Jacobian at an image (exact or matrix-free top-k), top directions as images |
| geometry | `lipschitz` | directional Lipschitz estimates along singular, Gaussian, null-space, optimised directions |
| geometry | `inspect` | spectrum + estimates along the top singular directions + those directions as images |
| geometry | `spectra` | Jacobian spectra at several images or of several models, side by side |
| classification | `classify` | zero-shot (or prototype) probabilities of images over class names |
| classification | `projection` | embeddings as coefficients on a reference set's first principal components (Fig 1 bars) |
| classification | `noise_sensitivity` | Gaussian-noise sensitivity of clean vs matched images as a detector: ROC, AUC |
| classification | `transfer` | images matched on one model, read by another |
| sweeps | `systematic` | every image matched to every image of another class, then classified |
| sweeps | `plan_systematic`, `merge_outcomes`, `systematic_from` | `systematic` cut into shards and merged in order |
| effects | `effect` | fixed pair sets matched against PSNR floors: the share read as the target |
| effects | `read_as_target` | labelled pairs matched as a visitor's match is: the share read as the target |
"""
from probe.experiments.base import Result, as_encoder
from probe.experiments.classification import (CLASSIFY, ClassifyResult, NoiseResult, ProjectionResult,
                                              TransferResult, classify, distance_ratio, noise_sensitivity, projection, roc_curve,
                                              transfer)
from probe.experiments.effects import EFFECT, EffectResult, LabelledPair, PairSet, effect, read_as_target
from probe.experiments.geometry import (DEFAULT_EPS, INSPECT, LIPSCHITZ, SPECTRUM, InspectResult, LipschitzResult,
                                        SpectraResult, SpectrumResult, inspect, lipschitz, spectra, spectrum)
from probe.experiments.pairs import (CompareResult, EquivalenceResult, MatchResult, compare, equivalence, match,
                                     match_text, png_round_trip, read_matched)
from probe.experiments.sweeps import (SYSTEMATIC, SweepPlan, SystematicResult, merge_outcomes, plan_systematic,
                                     systematic, systematic_from)
from probe.images import as_pixels
from probe.matching import FastSettings, PaperSettings

__all__ = ["Result", "as_encoder", "as_pixels", "FastSettings", "PaperSettings",
           "MatchResult", "EquivalenceResult", "CompareResult", "match", "equivalence", "match_text", "compare",
           "png_round_trip", "read_matched",
           "SpectrumResult", "LipschitzResult", "InspectResult", "SpectraResult", "spectrum", "lipschitz", "inspect",
           "spectra", "DEFAULT_EPS", "SPECTRUM", "LIPSCHITZ", "INSPECT",
           "CLASSIFY", "ClassifyResult", "ProjectionResult", "NoiseResult", "TransferResult", "classify", "projection",
           "noise_sensitivity", "roc_curve", "distance_ratio", "transfer",
           "SystematicResult", "SweepPlan", "SYSTEMATIC", "systematic", "plan_systematic", "merge_outcomes", "systematic_from",
           "EFFECT", "EffectResult", "PairSet", "LabelledPair", "effect", "read_as_target"]
