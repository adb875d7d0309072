"""Benchmark: fast UFM solver vs the papers' plain gradient descent (step 0.1).

Problem: the plain bias-free MSE UFM of Tirer & Bruna (seed 004, eq. 5) with K = 10 classes,
n = 100 samples per class, d = 64, lambda_W = lambda_H = 5e-3 (K sqrt(n lambda_W lambda_H) = 0.5), float64,
standard-normal start (seed 0) for both solvers. Target: relative error <= 1e-8 to the closed form
of Thm 3.1, measured as the largest of the relative errors of the objective, ||W||_F^2 and ||H||_F^2.

Protocol (so that measuring does not distort the timing):
1. run each solver with a callback that evaluates the error at every iteration and records the first
   iteration that reaches the target;
2. re-run each solver from the same start for exactly that many iterations without callback,
   metrics or history overhead, and time it (best and median of ``--repeats-fast`` /
   ``--repeats-gd`` runs: the machine may be shared, and the fast run is short);
3. print times, iterations and the ratio of seconds. Both solvers use the same objective/gradient
   code (hand-derived numpy, single-threaded BLAS), so the ratio measures the algorithms.

Usage: ``python benchmarks/ufm.py [--repeats-fast 10] [--repeats-gd 2] [--json]``. The ratio is printed as measured,
whether or not it meets the >= 50x target.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats-fast", type=int, default=10, help="timed repetitions of the fast solver")
    parser.add_argument("--repeats-gd", type=int, default=2, help="timed repetitions of gradient descent")
    parser.add_argument("--target", type=float, default=1e-8, help="relative error to reach")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument("--gd-max-iter", type=int, default=200_000)
    args = parser.parse_args(argv)

    from nclab.ufm import UFMProblem, predict, solve

    problem = UFMProblem("plain", loss="mse", num_classes=10, per_class=100, dim=64, lambda_w=5e-3,
                         lambda_h=5e-3)
    pred = predict(problem)

    def error(objective, x):
        m = problem.realize(x)
        return max(
            abs(objective / pred["objective"] - 1.0),
            abs(float((m["W"] ** 2).sum()) / pred["W_norm_sq"] - 1.0),
            abs(float((m["H"] ** 2).sum()) / pred["H_norm_sq"] - 1.0),
        )

    results = {}
    for solver in ("fast", "gd"):
        hit = {}

        def cb(it, f, x):
            if error(f, x) <= args.target:
                hit["iterations"] = it
                return True
            return False

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            solve(problem, solver=solver, lr=0.1, seed=0, callback=cb, track_metrics=False,
                  max_iter=args.gd_max_iter if solver == "gd" else 5000, tol=0.0)
        if "iterations" not in hit:
            print(f"{solver}: target {args.target:g} not reached", file=sys.stderr)
            return 1
        times = []
        for _ in range(args.repeats_fast if solver == "fast" else args.repeats_gd):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = solve(problem, solver=solver, lr=0.1, seed=0, max_iter=hit["iterations"], tol=0.0,
                          track_metrics=False, record_every=10**9, warn=False)
            times.append(time.perf_counter() - t0)
        results[solver] = {
            "iterations": hit["iterations"],
            "evaluations": r.n_evals,
            "seconds": min(times),
            "seconds_median": sorted(times)[len(times) // 2],
            "final_rel_error": error(r.objective, r.x),
        }
    ratio = results["gd"]["seconds"] / results["fast"]["seconds"]
    ratio_median = results["gd"]["seconds_median"] / results["fast"]["seconds_median"]
    out = {
        "problem": "plain MSE UFM, K=10, n=100, d=64, lambda_W=lambda_H=5e-3, bias-free (seed 004 Thm 3.1)",
        "target_rel_error": args.target,
        "fast": results["fast"],
        "gd_step_0.1": results["gd"],
        "seconds_ratio_gd_over_fast": ratio,
        "seconds_ratio_of_medians": ratio_median,
        "iterations_ratio": results["gd"]["iterations"] / results["fast"]["iterations"],
        "meets_50x_target": ratio >= 50,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        f, g = results["fast"], results["gd"]
        print(out["problem"])
        print(f"target: relative error <= {args.target:g} to the closed form (objective, ||W||^2, ||H||^2)")
        print(f"fast (L-BFGS)  : {f['iterations']:7d} iterations, {f['evaluations']:7d} evaluations, "
              f"{f['seconds']:.3f} s (median {f['seconds_median']:.3f} s), final error {f['final_rel_error']:.1e}")
        print(f"GD (step 0.1)  : {g['iterations']:7d} iterations, {g['evaluations']:7d} evaluations, "
              f"{g['seconds']:.3f} s (median {g['seconds_median']:.3f} s), final error {g['final_rel_error']:.1e}")
        print(f"ratio of seconds GD / fast: {ratio:.1f}x (target >= 50x: {'met' if ratio >= 50 else 'NOT met'}); "
              f"ratio of medians: {ratio_median:.1f}x; ratio of iterations: {out['iterations_ratio']:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
