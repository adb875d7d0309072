"""Synthetic datasets of Pan (MS thesis, Georgia Tech 2023, seed 003), Ch. 3.

* Teacher network (Sec. 3.1.1): "we generated an artificial dataset using a 3-layer neural
  network of the same architecture and generated 10000 samples from a normal distribution".
  Here: x ~ N(0, I_p); a randomly initialised ReLU network with three linear layers
  (p -> width -> width -> C, Kaiming-normal weights, zero biases) produces logits and the label
  is their argmax.
* Conic hull (Sec. 3.1.2, Fig. 3.2): "each class contains the area within an infinite cone
  with the vertex at the origin", H_c = {x : x . b_i > 0 for all i}. Here the cones are the
  cells of the argmax rule with class directions v_c: class(x) = argmax_c <x, v_c>, so that
  H_c = {x : x . (v_c - v_c') > 0 for all c' != c}, a polyhedral cone with vertex 0 and normals
  b = v_c - v_c'. In 2-D the default directions are C equally spaced unit vectors (Fig. 3.2
  shows four classes); in higher dimension they are random Gaussian directions. An optional
  angular margin drops points whose best and second-best scores are closer than
  ``margin * ||x||``.

Both generators are pure functions of their seed (``numpy.random.default_rng``).
"""

from __future__ import annotations

import numpy as np

from nclab.data.base import Dataset, make_dataset_from_arrays
from nclab.errors import SpecError

__all__ = ["make_teacher", "make_conic_hull", "conic_hull_directions"]


def _check_sizes(num_samples: int, num_classes: int, test_fraction: float) -> None:
    if num_classes < 2:
        raise SpecError(f"num_classes must be >= 2; got {num_classes}.")
    if num_samples < 2 * num_classes:
        raise SpecError(f"num_samples must be >= 2 * num_classes = {2 * num_classes}; got {num_samples}.")
    if not 0.0 < test_fraction < 1.0:
        raise SpecError(f"test_fraction must lie in (0, 1); got {test_fraction}.")


def make_teacher(
    *,
    num_samples: int = 10000,
    input_dim: int = 20,
    width: int = 64,
    num_classes: int = 4,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    r"""Gaussian inputs labelled by a random 3-layer ReLU teacher network (seed 003, Sec. 3.1.1).

    .. math:: x \sim \mathcal N(0, I_p),\quad
              y = \arg\max_c\, \big[W_3\,\sigma(W_2\,\sigma(W_1 x))\big]_c,\quad
              (W_l)_{ij} \sim \mathcal N(0, 2/\text{fan\_in}),\ \sigma = \mathrm{ReLU}

    Parameters
    ----------
    num_samples : int, default=10000
        Total number of samples (train + test); the thesis uses 10000.
    input_dim : int, default=20
        Input dimension p.
    width : int, default=64
        Hidden width of the teacher.
    num_classes : int, default=4
        Number of classes C (outputs of the teacher).
    test_fraction : float, default=0.2
        Fraction of samples in the test split.
    seed : int, default=0
        Seed of the generator that draws the teacher and the inputs.

    Returns
    -------
    Dataset
        Inputs (n, p) float32; ``info["teacher_weights"]`` holds [W1, W2, W3] (float64).
        Classes need not be balanced; use
        :func:`~nclab.data.balanced_subsample` for equal class sizes.

    Notes
    -----
    Cost O(n (p w + w^2 + w C)).
    """
    _check_sizes(num_samples, num_classes, test_fraction)
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.0, np.sqrt(2.0 / input_dim), size=(width, input_dim))
    w2 = rng.normal(0.0, np.sqrt(2.0 / width), size=(width, width))
    w3 = rng.normal(0.0, np.sqrt(2.0 / width), size=(num_classes, width))
    x = rng.normal(size=(num_samples, input_dim))
    h = np.maximum(x @ w1.T, 0.0)
    h = np.maximum(h @ w2.T, 0.0)
    y = np.argmax(h @ w3.T, axis=1)
    n_test = max(1, int(round(test_fraction * num_samples)))
    return make_dataset_from_arrays(
        "teacher", x[n_test:], y[n_test:], x[:n_test], y[:n_test], num_classes=num_classes,
        info={
            "input_dim": input_dim, "width": width, "seed": seed, "num_samples": num_samples,
            "teacher_weights": [w1, w2, w3],
        },
    )


def conic_hull_directions(num_classes: int, input_dim: int, *, seed: int = 0) -> np.ndarray:
    """Class directions v_c (C, p): equally spaced unit vectors in 2-D, Gaussian otherwise."""
    if input_dim == 2:
        ang = 2.0 * np.pi * np.arange(num_classes) / num_classes
        return np.stack([np.cos(ang), np.sin(ang)], axis=1)
    rng = np.random.default_rng([seed, 1])
    v = rng.normal(size=(num_classes, input_dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_conic_hull(
    *,
    num_samples: int = 10000,
    input_dim: int = 2,
    num_classes: int = 4,
    margin: float = 0.0,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    r"""Conic-hull dataset: each class is a polyhedral cone with vertex at the origin (seed 003, Fig. 3.2).

    .. math:: H_c = \{x : \langle x, v_c - v_{c'}\rangle > 0\ \ \forall c' \ne c\},\qquad
              y(x) = \arg\max_c \langle x, v_c\rangle

    Parameters
    ----------
    num_samples : int, default=10000
        Samples kept (train + test), after the margin filter.
    input_dim : int, default=2
        Dimension p; in 2-D the class directions are C equally spaced unit vectors.
    num_classes : int, default=4
        Number of cones C.
    margin : float, default=0.0
        Keep only points with (best - second-best score) >= margin * ||x||; 0 keeps all.
    test_fraction : float, default=0.2
        Fraction of samples in the test split.
    seed : int, default=0
        Seed of the input generator (and of the directions when ``input_dim > 2``).

    Returns
    -------
    Dataset
        Inputs (n, p) float32, x ~ N(0, I_p) conditioned on the margin; ``info["directions"]``
        holds the v_c as a list.

    Raises
    ------
    SpecError
        If the margin is so large that fewer than 1 in 1000 points survive.
    """
    _check_sizes(num_samples, num_classes, test_fraction)
    if margin < 0:
        raise SpecError(f"margin must be >= 0; got {margin}.")
    v = conic_hull_directions(num_classes, input_dim, seed=seed)
    rng = np.random.default_rng(seed)
    xs, ys, kept, drawn = [], [], 0, 0
    while kept < num_samples:
        x = rng.normal(size=(max(2 * (num_samples - kept), 256), input_dim))
        drawn += x.shape[0]
        s = x @ v.T
        top2 = np.sort(s, axis=1)[:, -2:]
        ok = (top2[:, 1] - top2[:, 0]) >= margin * np.linalg.norm(x, axis=1)
        xs.append(x[ok])
        ys.append(np.argmax(s[ok], axis=1))
        kept += int(ok.sum())
        if drawn > 1000 * num_samples and kept < num_samples:
            raise SpecError(f"margin={margin} keeps too few points; lower it (try <= 0.5).")
    x = np.concatenate(xs)[:num_samples]
    y = np.concatenate(ys)[:num_samples]
    n_test = max(1, int(round(test_fraction * num_samples)))
    return make_dataset_from_arrays(
        "conic_hull", x[n_test:], y[n_test:], x[:n_test], y[:n_test], num_classes=num_classes,
        info={"input_dim": input_dim, "margin": margin, "seed": seed, "directions": v.tolist()},
    )
