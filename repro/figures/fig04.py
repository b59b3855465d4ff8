from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(4, "Distributions of directional Lipschitz estimates: Gaussian, null-space Gaussian, optimised",
        tests=("claim 3",),
        design="Estimates at the smallest eps along random Gaussian directions, Gaussian directions with J's row "
               "space removed, and directions optimised to maximise the change, against sigma_1 and "
               "||J||_F / sqrt(n). Optimised over Gaussian is about sqrt(n/m) x sigma_1 / rms(sigma): its "
               "spectral part is compared with the random-init control's at the same image.",
        work=shared.geometry_work,
        metrics=("median_gaussian", "median_nullspace", "median_optimized", "sigma_1", "nullspace_over_gaussian",
                 "optimized_over_sigma_1", "gaussian_over_expected", "sigma1_over_rms",
                 "sigma1_over_rms_control", "sigma1_over_rms_over_control"))
def fig4(ctx):
    result = shared.geometry(ctx)
    numbers = result.numbers()
    med = numbers["medians_at_reference_eps"]
    metrics = {"median_gaussian": med["gaussian"], "median_nullspace": med["nullspace"],
               "median_optimized": med["optimized"], "sigma_1": numbers["sigma_1"],
               "nullspace_over_gaussian": med["nullspace"] / med["gaussian"],
               "optimized_over_sigma_1": med["optimized"] / numbers["sigma_1"],
               "gaussian_over_expected": med["gaussian"] / numbers["frobenius_over_sqrt_n"],
               "reference_eps": numbers["reference_eps"],
               **shared.versus_control(ctx, shared.geometry_image(ctx), numbers["singular_values"])}
    return Output([pick(result, "lipschitz")], metrics)
