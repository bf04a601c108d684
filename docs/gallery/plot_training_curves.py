"""
Masked SGD against the closed-form minimum
==========================================

Training a one-hidden-layer linear network ``y = U D V^T x`` with DropBlock masks ``D`` is
stochastic gradient descent on a random loss. Its expectation over the masks is a deterministic
objective (least squares plus a regulariser), and the global minimum of that objective over all
networks of the given width is known in closed form. This example checks the two against each
other: it runs the paper's Algorithm 1 with :func:`structdrop.train_many` (several seeds and two
block sizes, run in parallel by the C++ engine) and draws, for each run, the deterministic
objective at the iterates (the exact expectation over masks, recorded every 100 steps) and the
loss with the step's random mask (grey, noisy around it). The dashed line is the minimum from
:func:`structdrop.dropblock_global_min`.

The network has width ``d = 50`` and keeps each block with probability ``theta = 0.5``. In the
closed form, the width enters through the product-space strength: a width-``d`` network with
blocks of ``r`` units has the regularisation weight ``beta_bar = (r / d) (1 - theta) / theta``
(:func:`structdrop.beta_for_width`), passed to the solver as ``beta=beta_bar``. The curves
approach the dashed line from above and do not go below it: it is a lower bound for every network
of that width, and after 10^5 steps the runs are within a few tenths of a percent of it.

Both panels have the same minimum. Here the minimiser has no shrink-only head (``rho = 1``), and
then the penalty is ``beta_bar / r`` times the squared sum of the singular values, in which ``r``
cancels; the block size changes the path of SGD (its noise), not where it ends.
"""

import matplotlib.pyplot as plt
import numpy as np

import structdrop

problem = structdrop.paper_synthetic(seed=0)  # a, b, N = 80, 100, 1000
X, Y = problem.X, problem.Y
width, theta, block_sizes, seeds = 50, 0.5, (5, 10), range(3)
iterations = 100_000

# One initialisation per seed, shared by both block sizes; 0.1 N(0, 1) entries.
init = {s: np.random.default_rng([s, 1]) for s in seeds}
starts = {
    s: (0.1 * g.standard_normal((80, width)), 0.1 * g.standard_normal((100, width)))
    for s, g in init.items()
}
jobs = [(r, s) for r in block_sizes for s in seeds]
runs = structdrop.train_many(
    X,
    Y,
    [starts[s][0] for _, s in jobs],
    [starts[s][1] for _, s in jobs],
    [structdrop.DropBlock(r, theta=theta) for r, _ in jobs],
    lr=2e-5,
    iterations=iterations,
    lr_decay=3000.0,  # step size lr / (1 + (t - 1) / 3000)
    record_every=100,
    seed=list(seeds) * len(block_sizes),
)

# %%
# The closed-form minimum for each block size, and how close the runs ended.
minima = {}
for r in block_sizes:
    beta_bar = structdrop.beta_for_width(theta, width, r)
    solution = structdrop.dropblock_global_min(Y, X=X, block_size=r, beta=beta_bar)
    minima[r] = solution.objective
    finals = [run.deterministic_objective[-1] for (rr, _), run in zip(jobs, runs) if rr == r]
    print(
        f"r = {r:2d} (rho {solution.rho}, rank {solution.rank}): minimum {minima[r]:.6g}; "
        "final deterministic objective / minimum: "
        + ", ".join(f"{value / minima[r]:.4f}" for value in finals)
    )

# %%
fig, axes = plt.subplots(1, len(block_sizes), figsize=(11, 4), layout="constrained", sharey=True)
for ax, r in zip(axes, block_sizes):
    for (rr, s), run in zip(jobs, runs):
        if rr != r:
            continue
        steps = run.record_iterations
        ax.loglog(steps[1:], run.stochastic_objective[1:], color="0.75", lw=0.6)
        ax.loglog(steps[1:], run.deterministic_objective[1:], lw=1.2, label=f"seed {s}")
    ax.axhline(minima[r], color="k", ls="--", lw=1, label="closed-form minimum")
    ax.set_title(f"DropBlock, theta = {theta}, r = {r}, d = {width}")
    ax.set_xlabel("SGD step")
axes[0].set_ylabel("objective")
axes[0].legend(fontsize=8)
plt.show()
