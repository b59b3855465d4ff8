from repro.figures import classes_pairs
from repro.registry import figure

figure(8, "The paper's ImageNet classes (agama, black widow, hammerhead, leatherback turtle, peacock, wombat): "
          "matched pairs with their probabilities", tests=("claim 4",),
       design="Each image matched to the next class's image (a cycle); the 8-bit results classified over all 12 "
              "classes: every one read as its target, with its probability.",
       work=classes_pairs.work,
       metrics=("pairs", "target_top1_rate", "target_probability_min", "share_target_p99", "psnr_db_min", "mean_abs_255_max"))(
    classes_pairs.recipe)
