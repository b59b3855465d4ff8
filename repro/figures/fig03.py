from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(3, "Jacobian singular values at Fig 1 (a), and Lipschitz estimates along the right singular vectors",
        tests=("claim 3",),
        design="All singular values of J = d embedding / d input (normalised input space), the numerical rank, "
               "and ||f(x + eps v_i) - f(x)|| / eps at the smallest eps next to sigma_i; the spectrum's decay is "
               "compared with the same architecture's at random init (the control role), at the same image.",
        work=shared.geometry_work,
        metrics=("sigma_1", "numerical_rank", "m", "n", "null_space_dimension", "max_relative_error_singular",
                 "decay_half", "decay_half_control", "decay_half_over_control"))
def fig3(ctx):
    result = shared.geometry(ctx)
    numbers = result.numbers()
    sigma = numbers["singular_values"]
    estimates = [row[0] for row in numbers["families"]["singular"]["estimates"]]
    errors = [abs(e - s) / s for e, s in zip(estimates, sigma)]
    metrics = {"sigma_1": numbers["sigma_1"], "numerical_rank": numbers["numerical_rank"], "m": numbers["m"],
               "n": numbers["n"], "null_space_dimension": numbers["n"] - numbers["numerical_rank"],
               "reference_eps": numbers["reference_eps"], "max_relative_error_singular": max(errors),
               **shared.versus_control(ctx, shared.geometry_image(ctx), sigma)}
    return Output([pick(result, "lipschitz_singular")], metrics)
