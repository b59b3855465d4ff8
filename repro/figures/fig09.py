from repro.figures import classes_pairs
from repro.registry import figure

figure(9, "The paper's ImageNet classes (maltese dog, egyptian cat, tiger, racing car, panda, zebra): matched "
          "pairs with their probabilities", tests=("claim 4",),
       design="As Fig 8 for the other six classes.",
       work=classes_pairs.work,
       metrics=("pairs", "target_top1_rate", "target_probability_min", "share_target_p99", "psnr_db_min", "mean_abs_255_max"))(
    classes_pairs.recipe)
