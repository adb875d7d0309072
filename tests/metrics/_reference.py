"""Loop-by-loop float64 reference implementations, written from the cited equations.

Deliberately naive (sample loops, d x d matrices, NumPy's pinv): they share no code with nclab.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def class_means(H, y, C):
    mu = np.zeros((C, H.shape[1]))
    cnt = np.zeros(C)
    for h, c in zip(H, y):
        mu[c] += h
        cnt[c] += 1
    return mu / cnt[:, None]


def ref_nc1(H, y, C):
    mu = class_means(H, y, C)
    mu_g = mu.mean(0)
    d = H.shape[1]
    sw = np.zeros((d, d))
    for h, c in zip(H, y):
        r = h - mu[c]
        sw += np.outer(r, r)
    sw /= len(H)
    sb = np.zeros((d, d))
    for c in range(C):
        m = mu[c] - mu_g
        sb += np.outer(m, m)
    sb /= C
    return float(np.trace(sw @ np.linalg.pinv(sb, rcond=1e-10)) / C)


def ref_nc1_quotient(H, y, C):
    mu = class_means(H, y, C)
    tw = sum(float((h - mu[c]) @ (h - mu[c])) for h, c in zip(H, y)) / len(H)
    mu_g = mu.mean(0)
    tb = sum(float((mu[c] - mu_g) @ (mu[c] - mu_g)) for c in range(C)) / C
    return tw / tb


def ref_cdnv(H, y, C, p=1.0):
    mu = class_means(H, y, C)
    var = np.zeros(C)
    cnt = np.zeros(C)
    for h, c in zip(H, y):
        var[c] += float((h - mu[c]) @ (h - mu[c]))
        cnt[c] += 1
    var /= cnt
    vals = [
        (var[a] + var[b]) / (2 * float((mu[a] - mu[b]) @ (mu[a] - mu[b])) ** p)
        for a, b in itertools.combinations(range(C), 2)
    ]
    return float(np.mean(vals))


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def ref_equinorm(rows):
    n = np.array([np.linalg.norm(r) for r in rows])
    return float(n.std() / n.mean())


def ref_equiangular(rows):
    C = len(rows)
    return float(np.mean([abs(_cos(rows[a], rows[b]) + 1 / (C - 1)) for a, b in itertools.combinations(range(C), 2)]))


def ref_frame_dist(A, kind):
    C = A.shape[0]
    E = (np.eye(C) - np.ones((C, C)) / C) / math.sqrt(C - 1) if kind == "etf" else np.eye(C) / math.sqrt(C)
    return float(np.linalg.norm(A / np.linalg.norm(A) - E))


def ref_all(H, y, C, W=None, b=None, Ht=None, yt=None, ytrue=None, Hood=None):
    """Every metric of collapse_metrics, by loops."""
    mu = class_means(H, y, C)
    mu_g = mu.mean(0)
    M = mu - mu_g
    out = {
        "nc1": ref_nc1(H, y, C),
        "nc1_quotient": ref_nc1_quotient(H, y, C),
        "cdnv": ref_cdnv(H, y, C),
        "nc2_equinorm": ref_equinorm(M),
        "nc2_equiangular": ref_equiangular(M),
        "nc2_etf": ref_frame_dist(M @ M.T, "etf"),
        "nc2_of": ref_frame_dist(mu @ mu.T, "of"),
    }
    # hyperspherical uniformity
    mh = M / np.linalg.norm(M, axis=1, keepdims=True)
    dists = [np.linalg.norm(mh[a] - mh[b]) for a, b in itertools.combinations(range(C), 2)]
    out["gnc2_dist_var"] = float(np.var(dists))
    out["gnc2_log_var"] = float(np.var([math.log(1 / x) for x in dists]))
    # cosines, O(n^2) on purpose
    groups = [H[y == c] for c in range(C)]
    intra = [np.mean([_cos(a, b) for a in g for b in g]) for g in groups]
    inter = [np.mean([_cos(a, b) for a in groups[i] for b in groups[j]]) for i, j in itertools.combinations(range(C), 2)]
    out["cosine_intra_min"] = float(min(intra))
    out["cosine_intra_mean"] = float(np.mean(intra))
    out["cosine_inter_max"] = float(max(inter))
    ncc = [int(np.argmin([np.linalg.norm(h - mu[c]) for c in range(C)])) for h in H]
    out["ncc_accuracy"] = float(np.mean([p == c for p, c in zip(ncc, y)]))
    if W is not None:
        bb = np.zeros(C) if b is None else b
        out["nc2_equinorm_w"] = ref_equinorm(W)
        out["nc2_equiangular_w"] = ref_equiangular(W)
        out["nc2_etf_w"] = ref_frame_dist(W @ W.T, "etf")
        out["nc2_of_w"] = ref_frame_dist(W @ W.T, "of")
        out["nc3_duality"] = float(np.linalg.norm(W / np.linalg.norm(W) - M / np.linalg.norm(M)) ** 2)
        out["nc3_etf"] = ref_frame_dist(W @ M.T, "etf")
        out["unc3_var"] = float(np.var([W[c] @ M[c] for c in range(C)], ddof=1))
        out["nc3_cosine"] = float(np.mean([_cos(W[c], M[c]) for c in range(C)]))
        logits = [W @ h + bb for h in H]
        pred = [int(np.argmax(z)) for z in logits]
        out["nc4_ncc_mismatch"] = float(np.mean([p != q for p, q in zip(pred, ncc)]))
        out["accuracy"] = float(np.mean([p == c for p, c in zip(pred, y)]))
        marg = [z[c] - max(z[k] for k in range(C) if k != c) for z, c in zip(logits, y)]
        out["margin_min"] = float(min(marg))
        out["margin_mean"] = float(np.mean(marg))
        gamma = ref_pairwise_margins(H, y, C, W, bb)
        out["margin_normalized_min"] = float(
            min(gamma[a, b_] / np.linalg.norm(W[a] - W[b_]) for a in range(C) for b_ in range(C) if a != b_)
        )
    if Ht is not None:
        out["dilation"] = ref_nc1(Ht, yt, C)
        if ytrue is not None:
            mt = class_means(Ht, yt, C)
            d = [np.linalg.norm(h - mt[t]) for h, o, t in zip(H, y, ytrue) if o != t]
            out["memorization"] = float(sum(d))
            out["memorization_mean"] = float(np.mean(d))
            out["noisy_fraction"] = len(d) / len(H)
    if Hood is not None:
        g = Hood.mean(0)
        out["nc5_ood"] = float(np.mean([abs(_cos(mu[c], g)) for c in range(C)]))
    return out


def ref_pairwise_margins(H, y, C, W, b):
    gamma = np.full((C, C), np.inf)
    for h, c in zip(H, y):
        z = W @ h + b
        for k in range(C):
            if k != c:
                gamma[c, k] = min(gamma[c, k], z[c] - z[k])
                gamma[k, c] = min(gamma[k, c], z[c] - z[k])
    return gamma
