r"""Geometry of the class means and the classifier (NC2, CDNV, inter-class cosines, NC3-ETF).

Everything here is a function of the class moments (and W): no per-sample pass. It holds the one
:func:`simplex_etf` of the package, the one distance of a Gram matrix to a simplex ETF or an
orthogonal frame (:func:`frame_distance`, applied block by block in the tiled pass), equinorm, and
the tiled class-pair pass :func:`pair_statistics` that computes every C x C quantity in O(tile^2) memory.

The Gram matrices :math:`MM^\top` (centred means), :math:`UU^\top` (uncentred means),
:math:`WW^\top`, :math:`WM^\top` and :math:`\bar S \bar S^\top` (mean unit vectors) are visited block
by block (``tile`` rows at a time); pair statistics are reduced on the fly. With float64 products
(float64 features, or small problems) the Frobenius distances are summed elementwise (so that a perfect
configuration gives exactly 0, with no cancellation) after their normalising Frobenius norm has been
computed in d-space when C exceeds the tile (:math:`\|MM^\top\|_F = \|M^\top M\|_F`,
:math:`\|WM^\top\|_F^2 = \langle W^\top W, M^\top M\rangle`). With float32 products the distances
come entirely from float64 d-space identities (:func:`_etf_dist_dspace`, :func:`_of_dist_dspace`).

Cost: O(C^2 d) time for each Gram visited (symmetric ones on the upper block triangle only),
O(tile^2 + d^2 + C d) memory.
"""

from __future__ import annotations

import math

import torch

from nclab.errors import DegenerateWarning, ShapeError, SpecError

__all__ = [
    "simplex_etf", "frame_distance", "gram_distance", "equinorm", "pair_statistics", "intra_cosines", "cdnv", "nc2_equinorm",
    "nc2_equiangular", "nc2_etf", "nc2_of", "gnc2_dist_var", "gnc2_log_var", "cosine_intra", "cosine_inter",
]


def warn_degenerate_means(all_coincide: bool, one_at_global_mean: bool, stacklevel: int) -> None:
    """DegenerateWarnings when class means coincide or one equals the global mean (``stacklevel``
    counts from the caller of this function)."""
    import warnings

    if all_coincide:
        warnings.warn(
            "all class means coincide (Sigma_B = 0): NC1, NC2 and NC3 of the means are undefined and "
            "reported as NaN. Check the features are not constant.",
            DegenerateWarning,
            stacklevel=stacklevel + 1,
        )
    if one_at_global_mean:
        warnings.warn(
            "a class mean equals the global mean; its cosine with other classes is taken as 0.",
            DegenerateWarning,
            stacklevel=stacklevel + 1,
        )


def simplex_etf(
    num_classes: int,
    dim: int | None = None,
    *,
    permutation=None,
    rotation=None,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r"""Rows of a simplex ETF: (C, d), rows of norm ``scale``, pairwise cosines :math:`-1/(C-1)`.

    .. math:: M^\top = \sqrt{\tfrac{C}{C-1}}\,(I_C - \tfrac1C \mathbf 1\mathbf 1^\top)\,U

    Source: Papyan, Han & Donoho (2020); seed 002 Definition 3.1 and Sec. 5.2 (permuted :math:`MP` and
    rotated :math:`RM` variants). The one simplex ETF of nclab: fixed ETF heads (:mod:`nclab.nets`),
    the closed forms (:mod:`nclab.theory`) and the metrics' tests all use it.

    Parameters
    ----------
    num_classes : int
        C >= 2.
    dim : int, optional
        d >= C - 1, default C. For d >= C, U = [I_C, 0]; for d = C - 1, U is the orthonormal basis of
        the complement of the all-ones vector given by the QR factorisation of the centring matrix.
    permutation : sequence of int of length C, optional
        Row i becomes ETF vertex ``permutation[i]`` (the paper's MP).
    rotation : Tensor or ndarray of shape (d, d), optional
        Orthogonal R: rows become :math:`(RM)^\top`.
    scale : float, default=1.0
        Row norm.
    generator : torch.Generator, optional
        A random orthonormal embedding of the ETF into R^d (QR of a seeded Gaussian) instead of U.
    dtype : torch.dtype, default=torch.float64

    Raises
    ------
    SpecError
        If C < 2 or d < C - 1 (C unit vectors with pairwise cosine -1/(C-1) span C - 1 dimensions).

    Examples
    --------
    >>> E = simplex_etf(3)
    >>> [round(float(v), 6) for v in (E @ E.T)[0]]
    [1.0, -0.5, -0.5]
    """
    c = int(num_classes)
    d = c if dim is None else int(dim)
    if c < 2:
        raise SpecError(f"a simplex ETF needs num_classes >= 2; got {c}.")
    if d < c - 1:
        raise SpecError(
            f"a simplex ETF of {c} classes needs dim >= {c - 1}; got dim={d}. Widen the features "
            "(C vectors with pairwise cosine -1/(C-1) span C - 1 dimensions)."
        )
    centred = torch.eye(c, dtype=torch.float64) - 1.0 / c
    if d == c - 1:  # rows of an orthonormal basis q of 1-perp: q q^T = I - 11^T/c
        m, _ = torch.linalg.qr(centred[:, : c - 1])
    elif generator is not None:
        q, _ = torch.linalg.qr(torch.randn(d, c, dtype=torch.float64, generator=generator))
        m = centred @ q.T
    else:
        m = torch.zeros(c, d, dtype=torch.float64)
        m[:, :c] = centred
    m = m * (math.sqrt(c / (c - 1)) * float(scale))
    if permutation is not None:
        perm = torch.as_tensor(permutation, dtype=torch.long)
        if sorted(perm.tolist()) != list(range(c)):
            raise SpecError(f"permutation must be a permutation of 0..{c - 1}; got {perm.tolist()}.")
        m = m[perm]
    if rotation is not None:
        r = torch.as_tensor(rotation, dtype=torch.float64)
        if r.shape != (d, d) or not torch.allclose(r.T @ r, torch.eye(d, dtype=torch.float64), atol=1e-8):
            raise SpecError(f"rotation must be an orthogonal ({d}, {d}) matrix.")
        m = m @ r.T
    return m.to(dtype)


def frame_distance(A: torch.Tensor, B: torch.Tensor | None = None, *, kind: str = "etf") -> float:
    r"""Distance of the Gram matrix :math:`G = AB^\top` (C x C) to a simplex ETF or orthogonal frame:

    .. math:: \Big\| \frac{G}{\|G\|_F} - E \Big\|_F,\quad
       E_{\rm etf} = \frac{I_C - \frac1C 11^\top}{\sqrt{C-1}},\quad E_{\rm of} = \frac{I_C}{\sqrt C}

    (Tirer & Bruna 2022, eqs. 27-28; NaN when G = 0). ``B`` defaults to ``A``. The tiled pass of
    :func:`pair_statistics` sums the same squared entries block by block (:func:`_frame_block`).
    """
    return gram_distance(A @ (A if B is None else B).T, kind=kind)


def gram_distance(G: torch.Tensor, *, kind: str = "etf") -> float:
    """:func:`frame_distance` of a given (C, C) Gram matrix; NaN when G = 0."""
    if kind not in ("etf", "of"):
        raise ShapeError(f"kind must be 'etf' or 'of'; got {kind!r}.")
    G = G.to(torch.float64)
    fro = float(torch.linalg.matrix_norm(G))
    if fro == 0.0:
        return math.nan
    return math.sqrt(_frame_block(G.clone(), fro, G.shape[0], True, kind))


def equinorm(rows: torch.Tensor) -> float:
    """Population std / mean of the row norms (NC2 equinorm; Papyan et al. 2020). NaN if all are 0."""
    norms = torch.linalg.vector_norm(rows, dim=1)
    mean = float(norms.mean())
    return float(norms.std(unbiased=False)) / mean if mean > 0 else math.nan


def _dgram(A: torch.Tensor, cache: dict | None) -> torch.Tensor:
    """A^T A (d, d), O(C d^2); computed once per matrix within one ``cache`` (one pair pass)."""
    if cache is None:
        return A.T @ A
    hit = cache.get(id(A))
    if hit is None or hit[0] is not A:
        hit = cache[id(A)] = (A, A.T @ A)
    return hit[1]


def _fro_dspace(A: torch.Tensor, B: torch.Tensor, cache: dict | None = None) -> float:
    """||A B^T||_F of (C, d) matrices from d-space: ||A B^T||_F^2 = <A^T A, B^T B>, O(C d^2)."""
    return math.sqrt(max(float((_dgram(A, cache) * _dgram(B, cache)).sum()), 0.0))


def _fro_gram(A: torch.Tensor, B: torch.Tensor, tile: int, cache: dict | None = None) -> float:
    """||A B^T||_F for (C, d) matrices, through d-space when C is larger than a tile."""
    if A.shape[0] <= tile:
        return float(torch.linalg.matrix_norm(A @ B.T))
    return _fro_dspace(A, B, cache)


def _safe_inv_norms(norms: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """1 / ||x_c|| from the row norms, with 1 for zero rows (their cosines are then 0)."""
    return torch.where(norms > 0, norms, torch.ones_like(norms)).reciprocal().to(dtype)


def _blocks(C: int, tile: int):
    return [(s, min(C, s + tile)) for s in range(0, C, tile)]


def _frame_block(G: torch.Tensor, fro: float, C: int, diag: bool, kind: str) -> float:
    """Sum of squared entries of G/fro - E on a block of the Gram matrix (E of :func:`frame_distance`);
    ``diag``: the block holds diagonal entries. The one formula of both frame distances."""
    if kind == "etf":
        off = -1.0 / (C * math.sqrt(C - 1))
        on = 1.0 / math.sqrt(C - 1)
        D = G / fro - off
    else:
        on = 1.0 / math.sqrt(C)
        D = G / fro
    if diag:
        D.diagonal().sub_(on)
    return float((D * D).sum())


def _etf_dist_dspace(A: torch.Tensor, B: torch.Tensor, cache: dict | None = None) -> float:
    """|| A B^T / ||A B^T||_F - (I - 11^T/C)/sqrt(C-1) ||_F from d-space quantities, O(C d^2).

    ||X/f - E||^2 = 2 - 2 <X, E> / f with ||E||_F = 1 and
    <A B^T, E> = (tr(A B^T) - (1^T A)(B^T 1)/C) / sqrt(C-1)."""
    C = A.shape[0]
    f = _fro_dspace(A, B, cache)
    if f == 0.0:
        return math.nan
    inner = (float((A * B).sum()) - float(A.sum(0) @ B.sum(0)) / C) / math.sqrt(C - 1)
    return math.sqrt(max(2.0 - 2.0 * inner / f, 0.0))


def _of_dist_dspace(A: torch.Tensor, cache: dict | None = None) -> float:
    """|| A A^T / ||A A^T||_F - I/sqrt(C) ||_F = sqrt(2 - 2 ||A||_F^2 / (sqrt(C) ||A^T A||_F))."""
    C = A.shape[0]
    f = _fro_dspace(A, A, cache)
    if f == 0.0:
        return math.nan
    return math.sqrt(max(2.0 - 2.0 * float((A * A).sum()) / (math.sqrt(C) * f), 0.0))


#: Below this many multiply-adds (C^2 d) the class-pair products always run in float64.
SMALL_PAIR_WORK = 1 << 24


def pair_statistics(
    M: torch.Tensor,
    mu_g: torch.Tensor,
    var: torch.Tensor,
    unit_mean: torch.Tensor,
    W: torch.Tensor | None = None,
    *,
    tile: int = 2048,
    cdnv_exponent: float = 1.0,
    gram_dtype: torch.dtype = torch.float64,
) -> dict[str, float]:
    """All class-pair metrics from centred means M (C,d), global mean (d,), class variances (C,),
    mean unit vectors (C,d) and optional classifier W (C,d); float64 in, floats out.

    Two precisions:

    * ``gram_dtype=float64`` (float64 features, or any small problem): block Gram products and every
      elementwise statistic in float64; the Frobenius distances to the ETF / orthogonal frame are summed
      entry by entry, so a perfect configuration gives exactly 0.
    * ``gram_dtype=float32`` (float32 features, C^2 d >= SMALL_PAIR_WORK): block products and the
      elementwise statistics in float32, every sum over pairs in float64 (shifted, for the variances);
      the Frobenius distances come from float64 d-space identities in O(C d^2) (no C x C pass), with an
      absolute error ~1e-8 (the square root of float64 rounding), below the ~1e-7 of float32 entries.
    """
    C, d = M.shape
    f64 = torch.float64
    if C * C * d < SMALL_PAIR_WORK:  # small: float64 costs nothing
        gram_dtype = f64
    exact = gram_dtype == f64

    out: dict[str, float] = {}
    grams: dict = {}  # d x d Grams A^T A, each computed once in this pass
    norms_m = torch.linalg.vector_norm(M, dim=1)
    U = M + mu_g
    fro_mm = _fro_gram(M, M, tile, grams)
    warn_degenerate_means(fro_mm == 0.0, bool((norms_m == 0).any()), stacklevel=3)
    inv_nm = _safe_inv_norms(norms_m, gram_dtype)
    n2 = (norms_m**2).to(gram_dtype)
    var_e = var.to(gram_dtype)
    Me, Se = M.to(gram_dtype), unit_mean.to(gram_dtype)
    if W is not None:
        inv_nw = _safe_inv_norms(torch.linalg.vector_norm(W, dim=1), gram_dtype)
        We = W.to(gram_dtype)
    if exact:
        fro_uu = _fro_gram(U, U, tile, grams)
        if W is not None:
            fro_ww = _fro_gram(W, W, tile, grams)
            fro_wm = _fro_gram(W, M, tile, grams)

    # GNC2 variances as shifted sums around their value at a simplex ETF (stable near collapse)
    etf_dist = math.sqrt(2.0 + 2.0 / (C - 1))
    etf_log = -math.log(etf_dist)
    coincide = 8.0 * math.sqrt(torch.finfo(gram_dtype).eps)  # below: the directions coincide (cancellation)
    cdnv_sum = eq_sum = eqw_sum = 0.0
    g1 = g2 = l1 = l2 = 0.0
    inter_max = -math.inf
    etf_sq = of_sq = etfw_sq = ofw_sq = wm_sq = 0.0
    npairs = C * (C - 1) // 2
    blocks = _blocks(C, tile)
    p = cdnv_exponent

    def fsum(t: torch.Tensor) -> float:
        """Sum in float64 of float64 entries; float32 entries are summed in float32 rows of 1024
        (pairwise summation: ~1e-7 relative, the entries' own precision), the row sums in float64,
        so that no float64 copy of a tile is made."""
        if t.dtype == f64 or t.numel() < 1 << 16:
            return float(t.sum(dtype=f64))
        flat = t.reshape(-1)
        m = flat.numel() // 1024
        return float(flat[: m * 1024].view(m, 1024).sum(1).sum(dtype=f64) + flat[m * 1024 :].sum(dtype=f64))

    for bi, (i0, i1) in enumerate(blocks):
        for bj in range(bi, len(blocks)):
            j0, j1 = blocks[bj]
            diag = bi == bj
            G = Me[i0:i1] @ Me[j0:j1].T
            if diag:  # strict upper triangle of a diagonal block
                iu = torch.triu_indices(i1 - i0, j1 - j0, 1, device=M.device)

                def pairs(T: torch.Tensor, iu=iu) -> torch.Tensor:
                    return T[iu[0], iu[1]]
            else:  # every entry of an off-diagonal block is a pair: no (slow) boolean indexing

                def pairs(T: torch.Tensor) -> torch.Tensor:
                    return T.reshape(-1)
            weight = 1.0 if diag else 2.0
            if exact:  # entrywise Frobenius distances first: G is reused in place below
                if fro_mm > 0:
                    etf_sq += weight * _frame_block(G, fro_mm, C, diag, "etf")
                if fro_uu > 0:
                    of_sq += weight * _frame_block(U[i0:i1] @ U[j0:j1].T, fro_uu, C, diag, "of")
            Gp = pairs(G)
            ii, jj = (iu[0] + i0, iu[1] + j0) if diag else (None, None)

            def outer(v: torch.Tensor, op) -> torch.Tensor:
                if diag:
                    return op(v[ii], v[jj])
                return op(v[i0:i1, None], v[None, j0:j1]).reshape(-1)

            # CDNV: distances between class means (centring cancels); x / 0 -> inf or nan, reported as inf
            dist2 = outer(n2, torch.add).sub_(Gp, alpha=2.0).clamp_min_(0.0)
            vsum = outer(var_e, torch.add)
            cdnv_sum += fsum(vsum.div_(dist2 if p == 1.0 else dist2.pow_(p)))
            # cosines of centred means: equiangularity and GNC2
            cos = Gp.mul_(outer(inv_nm, torch.mul))
            eq_sum += fsum((cos + 1.0 / (C - 1)).abs_())
            dist = cos.mul_(-2.0).add_(2.0).clamp_min_(0.0).sqrt_()  # ||m_a/|m_a| - m_b/|m_b|||
            # sqrt(2 - 2 cos) cancels: coinciding directions give ~sqrt(eps) instead of 0, and -log of it
            # would be a large finite number that moves with rounding (and with the features' scale)
            dist.masked_fill_(dist < coincide, 0.0)
            lg = torch.log(dist).neg_().sub_(etf_log)
            dist.sub_(etf_dist)
            g1, g2 = g1 + fsum(dist), g2 + fsum(dist * dist)
            l1, l2 = l1 + fsum(lg), l2 + fsum(lg * lg)
            S = pairs(Se[i0:i1] @ Se[j0:j1].T)
            if S.numel():
                inter_max = max(inter_max, float(S.max()))
            if W is not None:
                GW = We[i0:i1] @ We[j0:j1].T
                if exact and fro_ww > 0:
                    etfw_sq += weight * _frame_block(GW, fro_ww, C, diag, "etf")
                    ofw_sq += weight * _frame_block(GW, fro_ww, C, diag, "of")
                cw = pairs(GW).mul_(outer(inv_nw, torch.mul))
                eqw_sum += fsum(cw.add_(1.0 / (C - 1)).abs_())
        if exact and W is not None and fro_wm > 0:
            for bj, (j0, j1) in enumerate(blocks):
                wm_sq += _frame_block(W[i0:i1] @ M[j0:j1].T, fro_wm, C, bi == bj, "etf")

    nan = math.nan
    ok = fro_mm > 0
    out["cdnv"] = 0.5 * cdnv_sum / npairs if math.isfinite(cdnv_sum) else math.inf
    out["nc2_equiangular"] = eq_sum / npairs if ok else nan
    if exact:
        out["nc2_etf"] = math.sqrt(etf_sq) if ok else nan
        out["nc2_of"] = math.sqrt(of_sq) if fro_uu > 0 else nan
    else:
        out["nc2_etf"] = _etf_dist_dspace(M, M, grams) if ok else nan
        out["nc2_of"] = _of_dist_dspace(U, grams)
    gm, lm = g1 / npairs, l1 / npairs
    out["gnc2_dist_var"] = max(g2 / npairs - gm * gm, 0.0) if ok else nan
    # two class means pointing the same way: log(1/0) is infinite and the variance undefined (NaN)
    out["gnc2_log_var"] = max(l2 / npairs - lm * lm, 0.0) if ok and math.isfinite(l1) else nan
    out["cosine_inter_max"] = inter_max
    if W is not None:
        out["nc2_equiangular_w"] = eqw_sum / npairs
        if exact:
            out["nc2_etf_w"] = math.sqrt(etfw_sq) if fro_ww > 0 else nan
            out["nc2_of_w"] = math.sqrt(ofw_sq) if fro_ww > 0 else nan
            out["nc3_etf"] = math.sqrt(wm_sq) if fro_wm > 0 else nan
        else:
            out["nc2_etf_w"] = _etf_dist_dspace(W, W, grams)
            out["nc2_of_w"] = _of_dist_dspace(W, grams)
            out["nc3_etf"] = _etf_dist_dspace(W, M, grams) if fro_mm > 0 else nan
    return out


# ---------------------------------------------------------------------------------------------
# front doors: each computes the moments (one pass), then the geometry of the means
# ---------------------------------------------------------------------------------------------
def _pairs_of(features, labels, num_classes, classes, weights=None, cdnv_exponent=1.0, within=False) -> dict[str, float]:
    from nclab.metrics import _pipeline as P
    from nclab.metrics.variability import within_class_note

    with torch.inference_mode():
        _, _, _, mom, W, _ = P.measured(features, labels, num_classes, classes, weights=weights)
        if within and within_class_note(mom, stacklevel=5):
            return {"cdnv": math.nan}
        if W is not None and mom.classes is not None:
            W = W[mom.classes]
        mean = mom.mean
        mu_g = mom.global_mean()
        return pair_statistics(mean - mu_g, mu_g, mom.sq_dev / mom.count, mom.unit_sum / mom.count[:, None], W,
                               cdnv_exponent=cdnv_exponent)


def cdnv(features, labels, *, num_classes: int | None = None, classes: str | None = None, exponent: float = 1.0) -> float:
    r"""Class-distance normalised variance (Galanti et al., 2022), averaged over class pairs.

    .. math:: \frac{2}{C(C-1)}\sum_{c<c'} \frac{\mathrm{Var}_c+\mathrm{Var}_{c'}}{2\,(\|\mu_c-\mu_{c'}\|^2)^{p}},
       \quad \mathrm{Var}_c = \frac{1}{n_c}\sum_{y_i=c}\|h_i-\mu_c\|^2

    ``exponent`` is p (default 1: the squared distance). O(n d + C^2 d), tiled over class pairs. NaN
    (with a DegenerateWarning) when every class has a single sample.
    """
    return _pairs_of(features, labels, num_classes, classes, cdnv_exponent=exponent, within=True)["cdnv"]


def nc2_equinorm(features, labels, *, weights=None, num_classes: int | None = None,
                 classes: str | None = None) -> dict[str, float]:
    r"""Equinorm: std/mean (population std) of :math:`\|\mu_c-\mu_G\|` and, given W, of :math:`\|w_c\|`."""
    from nclab.metrics import _pipeline as P

    with torch.inference_mode():
        _, _, _, mom, W, _ = P.measured(features, labels, num_classes, classes, weights=weights)
        out = {"means": equinorm(mom.centred())}
        if W is not None:
            out["weights"] = equinorm(W if mom.classes is None else W[mom.classes])
        return out


def nc2_equiangular(features, labels, *, num_classes: int | None = None, classes: str | None = None) -> float:
    r"""Mean over class pairs of :math:`|\cos(\mu_c-\mu_G, \mu_{c'}-\mu_G) + 1/(C-1)|`. O(C^2 d), tiled."""
    return _pairs_of(features, labels, num_classes, classes)["nc2_equiangular"]


def _rows(x, name) -> torch.Tensor:
    from nclab.metrics._validate import check_features

    return check_features(x, name).to(torch.float64)


def nc2_etf(features, labels=None, *, num_classes: int | None = None, classes: str | None = None) -> float:
    r"""Distance of the Gram matrix of the centred means to a simplex ETF (Tirer & Bruna, eq. 27):

    .. math:: \Big\| \frac{MM^\top}{\|MM^\top\|_F} - \frac{I_C - \frac1C 1 1^\top}{\sqrt{C-1}} \Big\|_F

    With ``labels=None``, ``features`` are taken as the (C, d) rows themselves (e.g. a classifier W,
    used uncentred, as in Tirer & Bruna's NC2 of W).
    """
    if labels is None:
        return frame_distance(_rows(features, "rows"), kind="etf")
    return _pairs_of(features, labels, num_classes, classes)["nc2_etf"]


def nc2_of(features, labels=None, *, num_classes: int | None = None, classes: str | None = None) -> float:
    r"""Distance of the Gram matrix of the UNcentred means U to an orthogonal frame:

    .. math:: \Big\| \frac{UU^\top}{\|UU^\top\|_F} - \frac{I_C}{\sqrt{C}} \Big\|_F

    (collapse of the positive-feature model, Nguyen et al. Def. 3.1, and of bias-free MSE, Tirer &
    Bruna Thm 3.1). With ``labels=None``, ``features`` are the (C, d) rows themselves.
    """
    if labels is None:
        return frame_distance(_rows(features, "rows"), kind="of")
    return _pairs_of(features, labels, num_classes, classes)["nc2_of"]


def gnc2_dist_var(features, labels, *, num_classes: int | None = None, classes: str | None = None) -> float:
    r"""Hyperspherical uniformity (Liu et al. 2023): population variance over class pairs of
    :math:`\|\hat m_a - \hat m_b\|`, :math:`\hat m_c = (\mu_c-\mu_G)/\|\mu_c-\mu_G\|`. Tiled, O(C^2 d)."""
    return _pairs_of(features, labels, num_classes, classes)["gnc2_dist_var"]


def gnc2_log_var(features, labels, *, num_classes: int | None = None, classes: str | None = None) -> float:
    r"""Population variance over class pairs of :math:`\log(1/\|\hat m_a - \hat m_b\|)` (Liu et al. 2023)."""
    return _pairs_of(features, labels, num_classes, classes)["gnc2_log_var"]


def intra_cosines(moments) -> torch.Tensor:
    r"""Per class, the mean over ordered pairs (i, j), i = j included, of :math:`\cos(h_{ci}, h_{cj})`
    (Pan 2023, Sec. 2.2), in O(C d) from the moments as :math:`\|\sum_i \hat h_{ci}\|^2 / n_c^2`."""
    um = moments.unit_sum / moments.count[:, None]
    return (um * um).sum(1)


def cosine_intra(features, labels, *, num_classes: int | None = None, classes: str | None = None) -> torch.Tensor:
    r"""Per class (C,), the mean intra-class cosine of Pan (2023, Sec. 2.2) (:func:`intra_cosines`). O(n d)."""
    from nclab.metrics import _pipeline as P

    return intra_cosines(P.measured(features, labels, num_classes, classes)[3])


def cosine_inter(features, labels, *, num_classes: int | None = None, classes: str | None = None) -> torch.Tensor:
    r"""(C, C) matrix of mean cosines between samples of classes c and c' (Pan 2023), O(n d + C^2 d).

    Forms a C x C matrix: for many classes use ``collapse_metrics(...)["cosine_inter_max"]``."""
    from nclab.metrics import _pipeline as P

    mom = P.measured(features, labels, num_classes, classes)[3]
    um = mom.unit_sum / mom.count[:, None]
    return um @ um.T
