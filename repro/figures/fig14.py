from repro.compose import Output, pick
from repro.figures import shared
from repro.registry import figure


@figure(14, "Lipschitz estimate and first-order error against eps: the linear regime and its break-down",
        tests=("claim 3",),
        design="Estimates and the first-order error ||f(x + eps v) - f(x) - eps J v|| / eps over a wide eps grid, "
               "per direction family: at small eps the map is linear (error << estimate), at large eps the "
               "piecewise-linear structure breaks it; null-space directions stay near 0 until then. The linear "
               "regime's scales come from a spectrum that decays much faster than the random-init control's.",
        work=shared.geometry_work,
        metrics=("eps", "singular_error_ratio_small_eps", "gaussian_error_ratio_small_eps",
                 "gaussian_error_ratio_large_eps", "nullspace_growth", "breakdown_eps_gaussian",
                 "decay_half_over_control"))
def fig14(ctx):
    result = shared.geometry(ctx)
    eps = result.eps
    fam = result.study.families

    def error_ratio(name, j):   # median over directions of first-order error / (eps * estimate)
        return float((fam[name].first_order_error[:, j] / (eps[j] * fam[name].estimates[:, j])).median())

    ratios = [error_ratio("gaussian", j) for j in range(len(eps))]
    null = fam["nullspace"].estimates.median(0).values
    metrics = {"eps": eps, "singular_error_ratio_small_eps": error_ratio("singular", 0),
               "gaussian_error_ratio_small_eps": ratios[0], "gaussian_error_ratio_large_eps": ratios[-1],
               "gaussian_error_ratio": ratios, "nullspace_median": null.tolist(),
               "nullspace_growth": float(null[-1] / null[0]),
               "breakdown_eps_gaussian": next((e for e, r in zip(eps, ratios) if r > 0.1), None),
               **shared.versus_control(ctx, shared.geometry_image(ctx), result.study.spectrum.singular_values)}
    return Output([pick(result, "lipschitz_eps")], metrics)
