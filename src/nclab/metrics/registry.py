"""The one list of nclab's collapse metrics.

One row per metric: its key, a one-line description, its source, what it needs, how it transforms
under the symmetries of the problem, and the function that computes it. The key order of
:func:`~nclab.metrics.collapse_metrics`, the ``nclab measure`` table and ``--help``, the invariance
tests and the table in ``docs/metrics.md`` (checked by a test) all come from here.

Needs: ``moments`` (one pass of :class:`~nclab.metrics.ClassStats`), ``decisions`` (the second pass,
:class:`~nclab.metrics.DecisionPass`), ``classifier`` (W, and b where it matters), ``test`` (test
features and labels), ``true_labels`` (clean training labels), ``ood`` (out-of-distribution features).

Invariances: every metric is unchanged when features and classifier rows are rotated together
(h -> Qh, w -> Qw); ``degree`` is k when the metric scales as a^k under h -> a h, b -> a b (a > 0;
W fixed, so logits scale by a): 0 for scale-invariant metrics, 1 for margins and distances.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "METRICS", "METRIC_ORDER", "describe", "Metrics", "markdown_table", "qualname"]

S000 = "Nguyen et al. 2023 (seed 000)"
S002 = "seed 002"
S003 = "Pan 2023 (seed 003)"
S004 = "Tirer & Bruna 2022 (seed 004)"
PHD = "Papyan, Han & Donoho 2020"


@dataclass(frozen=True)
class Metric:
    key: str
    description: str
    source: str
    needs: tuple[str, ...]
    function: str
    degree: int = 0


METRICS: tuple[Metric, ...] = (
    Metric("nc1", "tr(Sw Sb^+)/C, within-class variability", f"{PHD}; {S000} eq. 2; {S004} eq. 26",
           ("moments", "decisions"), "nc1"),
    Metric("nc1_quotient", "tr(Sw)/tr(Sb)", "Tirer, Huang & Niles-Weed 2023", ("moments",), "nc1_quotient"),
    Metric("cdnv", "class-distance normalised variance", "Galanti et al. 2022", ("moments",), "cdnv"),
    Metric("nc2_equinorm", "std/mean of centred-mean norms", PHD, ("moments",), "nc2_equinorm"),
    Metric("nc2_equinorm_w", "std/mean of classifier-row norms", PHD, ("classifier",), "nc2_equinorm"),
    Metric("nc2_equiangular", "mean |cos + 1/(C-1)| of centred means", PHD, ("moments",), "nc2_equiangular"),
    Metric("nc2_equiangular_w", "mean |cos + 1/(C-1)| of classifier rows", PHD, ("classifier",), "collapse_metrics"),
    Metric("nc2_etf", "centred means vs simplex ETF", f"{S004} eq. 27", ("moments",), "nc2_etf"),
    Metric("nc2_of", "uncentred means vs orthogonal frame", f"{S000} Def. 3.1; {S004} Thm 3.1", ("moments",),
           "nc2_of"),
    Metric("nc2_etf_w", "classifier vs simplex ETF", f"{S004} eq. 27", ("classifier",), "nc2_etf"),
    Metric("nc2_of_w", "classifier vs orthogonal frame", f"{S004} Thm 3.1", ("classifier",), "nc2_of"),
    Metric("nc3_duality", "||W/|W| - M/|M|||^2, self-duality", f"{PHD}; {S000}", ("moments", "classifier"),
           "nc3_duality"),
    Metric("nc3_etf", "W M^T vs simplex ETF", f"{S004} eq. 28", ("moments", "classifier"), "nc3_etf"),
    Metric("nc3_cosine", "mean cos(w_c, mu_c - mu_G), cosine self-duality", f"{S003} Sec. 2.2",
           ("moments", "classifier"), "nc3_cosine"),
    Metric("unc3_var", "variance of <w_c, mu_c - mu_G>", "Wu & Papyan 2024", ("moments", "classifier"), "unc3_var",
           degree=2),
    Metric("nc4_ncc_mismatch", "classifier vs nearest-class-centre disagreement", PHD,
           ("moments", "decisions", "classifier"), "nc4_ncc_mismatch"),
    Metric("ncc_accuracy", "nearest-class-centre accuracy", f"{PHD}; {S003} Def. 3.2.2", ("moments", "decisions"),
           "ncc_accuracy"),
    Metric("accuracy", "classifier accuracy", "-", ("decisions", "classifier"), "collapse_metrics"),
    Metric("cosine_intra_min", "min over classes of mean intra-class cosine", f"{S003} Sec. 2.2", ("moments",),
           "cosine_intra"),
    Metric("cosine_intra_mean", "mean intra-class cosine", f"{S003} Sec. 2.2", ("moments",), "cosine_intra"),
    Metric("cosine_inter_max", "max over class pairs of mean inter-class cosine", f"{S003} Sec. 2.2", ("moments",),
           "cosine_inter"),
    Metric("margin_min", "p_min, smallest sample margin", f"{S002} Thm 4.1", ("decisions", "classifier"), "margins",
           degree=1),
    Metric("margin_mean", "mean sample margin", f"{S002} Thm 4.1", ("decisions", "classifier"), "margins", degree=1),
    Metric("margin_normalized_min", "min gamma_yy' / ||w_y - w_y'||", f"{S002} Def. 4.3, Remark 4.9",
           ("decisions", "classifier"), "pairwise_margins", degree=1),
    Metric("gnc2_dist_var", "variance of pairwise distances of unit means", "Liu et al. 2023", ("moments",),
           "gnc2_dist_var"),
    Metric("gnc2_log_var", "variance of log inverse distances", "Liu et al. 2023", ("moments",), "gnc2_log_var"),
    Metric("dilation", "NC1 of test features (true labels)", f"{S000} Sec. 4.1", ("test",), "dilation"),
    Metric("memorization", "sum of noisy-sample distances to test means", f"{S000} eq. 3",
           ("moments", "test", "true_labels"), "memorization", degree=1),
    Metric("memorization_mean", "memorization per noisy sample", f"{S000} eq. 3", ("moments", "test", "true_labels"),
           "memorization", degree=1),
    Metric("noisy_fraction", "fraction of noisy training labels", f"{S000} Sec. 4.1", ("true_labels",),
           "memorization"),
    Metric("nc5_ood", "mean |cos(mu_c, mu_G^ood)|", "Ammar et al. 2024", ("moments", "ood"), "nc5_ood"),
    Metric("num_classes_present", "classes with at least one sample (classes='present')", "-", ("moments",),
           "collapse_metrics"),
    Metric("num_samples", "samples measured", "-", ("moments",), "nclab.measure.measure_files"),
    Metric("num_classes", "classes of the classifier / labels", "-", ("moments",), "nclab.measure.measure_files"),
)

METRIC_ORDER: tuple[str, ...] = tuple(m.key for m in METRICS)
_BY_KEY = {m.key: m for m in METRICS}
_RANK = {k: i for i, k in enumerate(METRIC_ORDER)}


def describe(key: str) -> str:
    """The one-line description of a metric key ('' for keys not in the registry)."""
    m = _BY_KEY.get(key)
    return m.description if m else ""


class Metrics(dict):
    """A dict of metric values in the registry's order, with ``notes``: for each metric that is NaN
    or was computed on a degenerate input, the reason in one line."""

    def __init__(self, values=(), notes=None):
        values = dict(values)
        super().__init__({**{k: values[k] for k in METRIC_ORDER if k in values},
                          **{k: v for k, v in values.items() if k not in _RANK}})
        self.notes: dict[str, str] = dict(notes or {})


def qualname(m: Metric) -> str:
    """The dotted name of the public function that computes a metric."""
    return m.function if "." in m.function else f"nclab.metrics.{m.function}"


def markdown_table() -> str:
    """The metrics table of docs/metrics.md: key, meaning, source, needs, function."""
    lines = ["| key | meaning | source | needs | computed by |", "|---|---|---|---|---|"]
    for m in METRICS:
        lines.append(f"| `{m.key}` | {m.description} | {m.source} | {', '.join(m.needs)} | `{qualname(m)}` |")
    return "\n".join(lines)
