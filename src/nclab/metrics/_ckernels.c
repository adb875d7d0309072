/* Compiled kernels of the dense engine (nclab.metrics._dense): the whole metric set of one or
 * more small feature sets against one classifier in a single call, and the arg-max accuracy counts
 * of a tracked evaluation.
 *
 * Why C: at the sizes of a tracked epoch (n ~ 4000, d = C = 10) the NumPy engine is ~130 calls on
 * small arrays, ~0.9 ms of fixed call overhead of its 1.4 ms; here the same arithmetic is two
 * passes over the samples and O(C^2 d) loops. Built at install time (setup.py, optional: without a
 * C compiler nclab runs the NumPy engine). No BLAS, no NumPy C API: arrays arrive through the
 * buffer protocol and results are written into arrays the caller allocated.
 *
 * Definitions and conventions are those of the NumPy engine (nclab/metrics/_dense.py) and of
 * nclab.metrics.functional, which the tests compare against: float64 arithmetic; ties of an arg max
 * go to the lowest index and a NaN counts as the maximum (as in argmax); minima and maxima propagate
 * NaN (as in NumPy); 0/0 = NaN and x/0 = inf (IEEE, never -ffast-math). Pair statistics run over the
 * ordered off-diagonal pairs (each unordered pair twice), which leaves their means, population
 * variances and maxima unchanged.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Columns of dense_sets' value array, one row per set (nclab/metrics/_dense.py names them). */
enum {
    V_CDNV, V_EQUINORM, V_EQUIANGULAR, V_ETF, V_OF, V_GVAR, V_LVAR, V_INTRA_MIN, V_INTRA_MEAN,
    V_INTER_MAX, V_EQUINORM_W, V_EQUIANGULAR_W, V_ETF_W, V_NC3_ETF, V_OF_W, V_DUALITY, V_UNC3,
    V_NC1_QUOTIENT, V_TRACE_B, V_NCC_ACC, V_ACC, V_NC4, V_MARGIN_MIN, V_MARGIN_MEAN, V_MARGIN_NORM,
    V_ALL_ZERO, V_SOME_ZERO, V_FINITE, NV
};

/* ---- buffers ----------------------------------------------------------------------------- */

typedef struct {
    Py_buffer view;
    int held;
} Buf;

static void release(Buf *b) {
    if (b->held) PyBuffer_Release(&b->view);
    b->held = 0;
}

/* A C-contiguous buffer whose items have one of the struct-module codes in `formats` ('f' float32,
 * 'd' float64, 'l'/'q' int64) and, when count >= 0, `count` items; writable if asked. Sets a Python
 * error and returns -1 otherwise. */
static int get_buf(PyObject *obj, Buf *b, const char *formats, Py_ssize_t count, int writable, const char *what) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) != 0) return -1;
    b->held = 1;
    const char *f = b->view.format ? b->view.format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    const Py_ssize_t want = (*f == 'f') ? 4 : 8;
    if (strlen(f) != 1 || !strchr(formats, *f) || b->view.itemsize != want ||
        (count >= 0 && b->view.len != count * want)) {
        PyErr_Format(PyExc_ValueError, "_ckernels: %s has the wrong type or size", what);
        release(b);
        return -1;
    }
    return 0;
}

/* ---- small helpers ----------------------------------------------------------------------- */

static inline double nan_min(double m, double v) { return (v < m || v != v) ? v : m; }
static inline double nan_max(double m, double v) { return (v > m || v != v) ? v : m; }

/* First index of the maximum of q[0..C) (a NaN counts as the maximum, as in argmax). */
static inline int first_argmax_d(const double *q, int C) {
    double best = q[0];
    if (best != best) return 0;
    int p = 0;
    for (int t = 1; t < C; t++) {
        double v = q[t];
        if (v != v) return t;
        if (v > best) { best = v; p = t; }
    }
    return p;
}

static inline int first_argmax_f(const float *q, int C) {
    float best = q[0];
    if (best != best) return 0;
    int p = 0;
    for (int t = 1; t < C; t++) {
        float v = q[t];
        if (v != v) return t;
        if (v > best) { best = v; p = t; }
    }
    return p;
}

/* Mean and two-pass variance (ddof 0 or 1) of x[0..n), as NumPy's x.sum() / n and
 * ((x - mean)^2).sum() / (n - ddof). */
static void mean_var(const double *x, int n, int ddof, double *mean, double *var) {
    double m = 0.0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    double v = 0.0;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    *mean = m;
    *var = v / (n - ddof);
}

/* G = A B^T for row-major A (ra, d), B (rb, d). */
static void gram(const double *A, int ra, const double *B, int rb, int d, double *G) {
    for (int a = 0; a < ra; a++)
        for (int b = 0; b < rb; b++) {
            double s = 0.0;
            for (int k = 0; k < d; k++) s += A[(size_t)a * d + k] * B[(size_t)b * d + k];
            G[a * rb + b] = s;
        }
}

/* || G / ||G||_F - T ||_F, T the simplex-ETF Gram (I - 11^T / C) / sqrt(C - 1) or the orthogonal
 * frame's I / sqrt(C); NaN for G = 0 (0/0). */
static double frame_distance(const double *G, int C, int orthogonal) {
    double fro = 0.0;
    for (int i = 0; i < C * C; i++) fro += G[i] * G[i];
    fro = sqrt(fro);
    double td, to;
    if (orthogonal) {
        td = 1.0 / sqrt((double)C);
        to = 0.0;
    } else {
        td = (1.0 - 1.0 / C) / sqrt((double)(C - 1));
        to = (0.0 - 1.0 / C) / sqrt((double)(C - 1));
    }
    double s = 0.0;
    for (int a = 0; a < C; a++)
        for (int b = 0; b < C; b++) {
            double v = G[a * C + b] / fro - (a == b ? td : to);
            s += v * v;
        }
    return sqrt(s);
}

/* Row norms of a Gram matrix: squared norms (its diagonal), norms, and reciprocal norms (1 for a
 * zero row, whose cosine with every row is then 0). */
static void row_norms(const double *G, int C, double *sq, double *nrm, double *inv) {
    for (int c = 0; c < C; c++) {
        sq[c] = G[c * C + c];
        nrm[c] = sqrt(sq[c] > 0.0 ? sq[c] : 0.0);
        inv[c] = nrm[c] > 0 ? 1.0 / nrm[c] : 1.0;
    }
}

/* Equiangularity mean |cos + 1/(C-1)| over ordered off-diagonal pairs; the cosines go to cos. */
static double equiangular(const double *G, const double *inv, int C, double *cos) {
    double s = 0.0;
    int i = 0;
    for (int a = 0; a < C; a++)
        for (int b = 0; b < C; b++)
            if (a != b) {
                double v = G[a * C + b] * inv[a] * inv[b];
                cos[i++] = v;
                s += fabs(v + 1.0 / (C - 1));
            }
    return s / i;
}

static double equinorm(const double *nrm, int C) {
    double m, v;
    mean_var(nrm, C, 0, &m, &v);
    return sqrt(v) / m;
}

/* ---- one set ----------------------------------------------------------------------------- */

typedef struct {
    int C, d, has_w, pairwise, scatter;
    double p;
    const double *W, *b;
    /* classifier statistics shared by the sets */
    double eqn_w, eq_w, etf_w, of_w, wfro;
    double *dw; /* C x C distances between the rows of W */
} Shared;

/* Scratch of one set (C, d sized), carved from one allocation. */
typedef struct {
    double *sum, *usum, *mean, *M, *Sb, *var, *sqdev, *P, *A, *G, *G2, *sq, *nrm, *inv, *cos, *gd,
        *lg, *x, *q, *mu;
    int64_t *counts;
} Work;

static size_t work_doubles(int C, int d) {
    size_t CC = (size_t)C * C, Cd = (size_t)C * d;
    return 5 * Cd + 2 * C + (size_t)(d + 1) * 2 * C + 3 * CC + 3 * C + 3 * CC + d + 2 * C + d;
}

static void work_carve(Work *w, double *base, int C, int d) {
    size_t CC = (size_t)C * C, Cd = (size_t)C * d;
    w->sum = base; base += Cd;
    w->usum = base; base += Cd;
    w->mean = base; base += Cd;
    w->M = base; base += Cd;
    w->Sb = base; base += Cd;
    w->var = base; base += C;
    w->sqdev = base; base += C;
    w->P = base; base += (size_t)(d + 1) * 2 * C;
    w->A = base; base += CC;
    w->G = base; base += CC;
    w->G2 = base; base += CC;
    w->sq = base; base += C;
    w->nrm = base; base += C;
    w->inv = base; base += C;
    w->cos = base; base += CC;
    w->gd = base; base += CC;
    w->lg = base; base += CC;
    w->x = base; base += d;
    w->q = base; base += 2 * C;
    w->mu = base;
}

/* Hot loops are compiled twice on x86-64 (AVX2 and baseline SSE2; the loader picks one). Floating
 * point contraction stays off (-ffp-contract=off in setup.py): every score is the same sequence of
 * IEEE operations, so classes with equal parameters get equal scores and arg-max ties stay ties. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

/* Pass 1 of one set: its rows as float64 into X (n, d); class sums of the rows and of the unit rows
 * (a zero row contributes 0); class counts. */
HOT static void pass_sums(const void *H, int f32, const int64_t *restrict y, Py_ssize_t n, int d,
                          double *restrict X, double *restrict sum, double *restrict usum, int64_t *restrict counts) {
    for (Py_ssize_t i = 0; i < n; i++) {
        double *restrict x = X + (size_t)i * d;
        if (f32) {
            const float *restrict h = (const float *)H + (size_t)i * d;
            for (int k = 0; k < d; k++) x[k] = (double)h[k];
        } else {
            memcpy(x, (const double *)H + (size_t)i * d, sizeof(double) * d);
        }
        double s = 0.0;
        for (int k = 0; k < d; k++) s += x[k] * x[k];
        const double nrm = sqrt(s);
        const double inv = 1.0 / (nrm > 0 ? nrm : 1.0);
        const int c = (int)y[i];
        double *restrict sm = sum + (size_t)c * d, *restrict us = usum + (size_t)c * d;
        for (int k = 0; k < d; k++) sm[k] += x[k];
        for (int k = 0; k < d; k++) us[k] += x[k] * inv;
        counts[c]++;
    }
}

typedef struct {
    int64_t ncc, acc, differ;
    double mmin, msum;
} Tally;

/* Pass 2 of one set, over the rows X (n, d) with the class means known: squared deviations from the
 * class mean per class, the NC1 matrix (the within-class scatter sum r r^T (d, d), or K = sum z z^T
 * with z = M r (C, C)), and the decisions: scores q = [x, 1] Pm (Pm (d + 1, T): NCC scores in
 * columns 0..C-1, logits in C..2C-1 with a classifier), the NCC and classifier arg maxes, margins
 * (own logit - best other) and the directed pair minima A[y, c] = min over class y of z_y - z_c. */
HOT static void pass_decide(const double *restrict X, const int64_t *restrict y, Py_ssize_t n, int d, int C, int T,
                            int scatter, int has_w, const double *restrict mean, const double *restrict M,
                            const double *restrict Pm, double *restrict mat, double *restrict sqdev,
                            double *restrict Am, double *restrict r, double *restrict z, double *restrict q, Tally *tl) {
    const double *restrict pd = Pm + (size_t)d * T;
    int64_t n_ncc = 0, n_acc = 0, n_differ = 0;
    double mmin = INFINITY, msum = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const double *restrict x = X + (size_t)i * d;
        const int c = (int)y[i];
        const double *restrict mc = mean + (size_t)c * d;
        double s = 0.0;
        for (int k = 0; k < d; k++) {
            r[k] = x[k] - mc[k];
            s += r[k] * r[k];
        }
        sqdev[c] += s;
        if (scatter) {
            for (int a = 0; a < d; a++) {
                const double ra = r[a];
                double *restrict row = mat + (size_t)a * d;
                for (int b = 0; b < d; b++) row[b] += ra * r[b];
            }
        } else {
            for (int a = 0; a < C; a++) z[a] = 0.0;
            for (int k = 0; k < d; k++) { /* z = M r, M (C, d): column by column */
                const double rk = r[k];
                for (int a = 0; a < C; a++) z[a] += M[(size_t)a * d + k] * rk;
            }
            for (int a = 0; a < C; a++) {
                const double za = z[a];
                double *restrict row = mat + (size_t)a * C;
                for (int b = 0; b < C; b++) row[b] += za * z[b];
            }
        }
        for (int t = 0; t < T; t++) q[t] = 0.0;
        for (int k = 0; k < d; k++) {
            const double xk = x[k];
            const double *restrict pk = Pm + (size_t)k * T;
            for (int t = 0; t < T; t++) q[t] += xk * pk[t];
        }
        for (int t = 0; t < T; t++) q[t] += pd[t];
        const int p0 = first_argmax_d(q, C);
        n_ncc += p0 == c;
        if (!has_w) continue;
        const double *restrict zl = q + C;
        const int p1 = first_argmax_d(zl, C);
        n_acc += p1 == c;
        n_differ += p1 != p0;
        const double own = zl[c];
        double mg = INFINITY;
        double *restrict arow = Am + (size_t)c * C;
        for (int t = 0; t < C; t++)
            if (t != c) {
                const double v = own - zl[t];
                mg = nan_min(mg, v);
                arow[t] = nan_min(arow[t], v);
            }
        mmin = nan_min(mmin, mg);
        msum += mg;
    }
    tl->ncc = n_ncc;
    tl->acc = n_acc;
    tl->differ = n_differ;
    tl->mmin = mmin;
    tl->msum = msum;
}

/* Every metric of one set: vals (NV), class means (C, d), centred means (C, d) and the NC1 matrix
 * (the within-class scatter (d, d) or K = M S M^T (C, C)) into the caller's arrays; X is (n, d)
 * scratch. Returns 0, or 1 when a class's sums are not finite (the caller raises, naming the bad
 * features). */
static int one_set(const Shared *sh, Work *w, const void *H, int f32, const int64_t *y, Py_ssize_t n, double *X,
                   double *vals, double *mean_out, double *cm_out, double *mat_out) {
    const int C = sh->C, d = sh->d;
    const size_t Cd = (size_t)C * d;
    memset(w->sum, 0, sizeof(double) * Cd);
    memset(w->usum, 0, sizeof(double) * Cd);
    memset(w->counts, 0, sizeof(int64_t) * C);
    pass_sums(H, f32, y, n, d, X, w->sum, w->usum, w->counts);
    int finite = 1;
    for (int c = 0; c < C; c++)
        for (int k = 0; k < d; k++) {
            const size_t j = (size_t)c * d + k;
            w->mean[j] = w->sum[j] / (double)w->counts[c];
            w->Sb[j] = w->usum[j] / (double)w->counts[c];
            finite = finite && isfinite(w->mean[j]) && isfinite(w->Sb[j]);
        }
    vals[V_FINITE] = finite;
    if (!finite) return 1;
    memcpy(mean_out, w->mean, sizeof(double) * Cd);
    /* centred means M = mean - mu_G, mu_G the mean of the class means */
    for (int k = 0; k < d; k++) {
        double s = 0.0;
        for (int c = 0; c < C; c++) s += w->mean[(size_t)c * d + k];
        w->mu[k] = s / C;
    }
    for (int c = 0; c < C; c++)
        for (int k = 0; k < d; k++) w->M[(size_t)c * d + k] = w->mean[(size_t)c * d + k] - w->mu[k];
    memcpy(cm_out, w->M, sizeof(double) * Cd);

    /* decision rows: NCC scores m_c.h - m_c.(m_c/2 + mu_G) (the nearest-mean rule up to a per-sample
     * constant) and logits w_c.h + b_c; row d holds the constants */
    const int T = sh->has_w ? 2 * C : C;
    double *Pm = w->P;
    for (int c = 0; c < C; c++) {
        double cst = 0.0;
        for (int k = 0; k < d; k++) {
            const double mk = w->M[(size_t)c * d + k];
            Pm[(size_t)k * T + c] = mk;
            cst += mk * (0.5 * mk + w->mu[k]);
        }
        Pm[(size_t)d * T + c] = -cst;
        if (sh->has_w) {
            for (int k = 0; k < d; k++) Pm[(size_t)k * T + C + c] = sh->W[(size_t)c * d + k];
            Pm[(size_t)d * T + C + c] = sh->b ? sh->b[c] : 0.0;
        }
    }
    const int m = sh->scatter ? d : C;
    memset(mat_out, 0, sizeof(double) * m * m);
    memset(w->sqdev, 0, sizeof(double) * C);
    for (int i = 0; i < C * C; i++) w->A[i] = INFINITY;
    Tally tl;
    pass_decide(X, y, n, d, C, T, sh->scatter, sh->has_w, w->mean, w->M, Pm, mat_out, w->sqdev, w->A, w->x,
                w->gd, w->q, &tl);
    for (int c = 0; c < C; c++) w->var[c] = w->sqdev[c] / (double)w->counts[c];

    /* class pairs: Grams of the centred means (G), the mean unit vectors (G2), the uncentred means */
    const int P = C * (C - 1);
    double *G = w->G, *G2 = w->G2, *sq = w->sq, *nrm = w->nrm, *inv = w->inv;
    gram(w->M, C, w->M, C, d, G);
    row_norms(G, C, sq, nrm, inv);
    double trace = 0.0;
    int all_zero = 1, some_zero = 0;
    for (int c = 0; c < C; c++) {
        trace += sq[c];
        all_zero = all_zero && sq[c] == 0.0;
        some_zero = some_zero || nrm[c] == 0.0;
    }
    /* CDNV: mean over pairs of (var_a + var_b) / ||mu_a - mu_b||^(2p), halved */
    double cd = 0.0;
    for (int a = 0; a < C; a++)
        for (int b = 0; b < C; b++)
            if (a != b) {
                double d2 = sq[a] + sq[b] - 2.0 * G[a * C + b];
                d2 = d2 > 0.0 ? d2 : 0.0;
                cd += (w->var[a] + w->var[b]) / (sh->p == 1.0 ? d2 : pow(d2, sh->p));
            }
    vals[V_CDNV] = 0.5 * (cd / P);
    vals[V_EQUINORM] = equinorm(nrm, C);
    vals[V_EQUIANGULAR] = equiangular(G, inv, C, w->cos);
    vals[V_ETF] = frame_distance(G, C, 0);
    for (int i = 0; i < P; i++) { /* ||m_a/|m_a| - m_b/|m_b||| and its log */
        const double v = 2.0 - 2.0 * w->cos[i];
        w->gd[i] = sqrt(v > 0.0 ? v : 0.0);
        w->lg[i] = log(w->gd[i]);
    }
    double mtmp;
    mean_var(w->gd, P, 0, &mtmp, &vals[V_GVAR]);
    mean_var(w->lg, P, 0, &mtmp, &vals[V_LVAR]);
    gram(w->Sb, C, w->Sb, C, d, G2);
    double intra_min = INFINITY, intra_sum = 0.0, inter = -INFINITY;
    for (int a = 0; a < C; a++) {
        const double v = G2[a * C + a];
        intra_min = nan_min(intra_min, v);
        intra_sum += v;
        for (int b = 0; b < C; b++)
            if (a != b) inter = nan_max(inter, G2[a * C + b]);
    }
    vals[V_INTRA_MIN] = intra_min;
    vals[V_INTRA_MEAN] = intra_sum / C;
    vals[V_INTER_MAX] = inter;
    gram(w->mean, C, w->mean, C, d, G2); /* uncentred means: distance to the orthogonal frame */
    vals[V_OF] = frame_distance(G2, C, 1);
    if (all_zero) vals[V_EQUIANGULAR] = vals[V_GVAR] = vals[V_LVAR] = NAN;
    vals[V_ALL_ZERO] = all_zero;
    vals[V_SOME_ZERO] = some_zero;
    vals[V_TRACE_B] = trace / C;
    double sqdev_sum = 0.0;
    for (int c = 0; c < C; c++) sqdev_sum += w->sqdev[c];
    vals[V_NC1_QUOTIENT] = trace == 0.0 ? NAN : sqdev_sum / (double)n / (trace / C);
    vals[V_NCC_ACC] = (double)tl.ncc / n;
    if (!sh->has_w) return 0;

    /* self-duality: W M^T, and W and M each scaled to unit Frobenius norm */
    const double *W = sh->W;
    gram(W, C, w->M, C, d, G2);
    vals[V_NC3_ETF] = frame_distance(G2, C, 0);
    const double fm = sqrt(trace);
    double dual = 0.0;
    for (size_t j = 0; j < Cd; j++) {
        const double v = W[j] / sh->wfro - w->M[j] / fm;
        dual += v * v;
    }
    vals[V_DUALITY] = dual;
    for (int c = 0; c < C; c++) w->cos[c] = G2[c * C + c]; /* <w_c, m_c> */
    mean_var(w->cos, C, 1, &mtmp, &vals[V_UNC3]);
    vals[V_EQUINORM_W] = sh->eqn_w;
    vals[V_EQUIANGULAR_W] = sh->eq_w;
    vals[V_ETF_W] = sh->etf_w;
    vals[V_OF_W] = sh->of_w;
    vals[V_ACC] = (double)tl.acc / n;
    vals[V_NC4] = (double)tl.differ / n;
    vals[V_MARGIN_MIN] = tl.mmin;
    vals[V_MARGIN_MEAN] = tl.msum / n;
    if (sh->pairwise) { /* min over pairs of gamma / ||w_a - w_b||, gamma = min(A_ab, A_ba) */
        const double *Am = w->A;
        double best = NAN;
        int any = 0;
        for (int a = 0; a < C; a++)
            for (int b = 0; b < C; b++) {
                if (a == b) continue;
                const double u = Am[a * C + b], v = Am[b * C + a];
                const double gam = (u != u || v != v) ? NAN : (u < v ? u : v);
                const double dw = sh->dw[a * C + b];
                if (isfinite(gam) && dw > 0) {
                    const double ratio = gam / dw;
                    if (!any || ratio < best) best = ratio;
                    any = 1;
                }
            }
        vals[V_MARGIN_NORM] = best;
    }
    return 0;
}

/* Statistics of the classifier shared by every set. */
static void classifier_stats(Shared *sh, double *G, double *sq, double *nrm, double *inv, double *cos) {
    const int C = sh->C, d = sh->d;
    gram(sh->W, C, sh->W, C, d, G);
    row_norms(G, C, sq, nrm, inv);
    double t = 0.0;
    for (int c = 0; c < C; c++) t += sq[c];
    sh->wfro = sqrt(t);
    sh->eqn_w = equinorm(nrm, C);
    sh->eq_w = equiangular(G, inv, C, cos);
    sh->etf_w = frame_distance(G, C, 0);
    sh->of_w = frame_distance(G, C, 1);
    for (int a = 0; a < C; a++) /* from the differences: exactly 0 for coinciding rows */
        for (int b = 0; b < C; b++) {
            double s = 0.0;
            for (int k = 0; k < d; k++) {
                const double v = sh->W[(size_t)a * d + k] - sh->W[(size_t)b * d + k];
                s += v * v;
            }
            sh->dw[a * C + b] = sqrt(s);
        }
}

/* dense_sets(feats, labels, C, W, b, p, pairwise, scatter, vals, means, cmeans, mats) -> int
 *
 * feats, labels: tuples of ns C-contiguous arrays (n_s, d) float32/float64 and (n_s,) int64, every
 * class 0..C-1 present in each set (the caller checks; a label outside 0..C-1 is an error here).
 * W (C, d) float64 and b (C,) float64 or None. Writes vals (ns, NV) float64 (columns that do not
 * apply are left as the caller filled them), means and cmeans (ns, C, d) float64 (class means,
 * centred class means) and mats (ns, m, m) float64, the NC1 matrix (the within-class scatter,
 * m = d, with scatter; else K = M S M^T, m = C). Returns -1 when every set is done, else the index
 * of the first set whose class sums are not finite (the sets after it are not computed). The GIL
 * is released while the kernel runs. */
static PyObject *dense_sets(PyObject *self, PyObject *args) {
    PyObject *feats, *labels, *Wo, *bo, *valso, *meanso, *cmo, *matso;
    int C, pairwise, scatter;
    double p;
    if (!PyArg_ParseTuple(args, "O!O!iOOdppOOOO", &PyTuple_Type, &feats, &PyTuple_Type, &labels, &C, &Wo,
                          &bo, &p, &pairwise, &scatter, &valso, &meanso, &cmo, &matso))
        return NULL;
    const Py_ssize_t ns = PyTuple_GET_SIZE(feats);
    if (ns < 1 || PyTuple_GET_SIZE(labels) != ns || C < 2) {
        PyErr_SetString(PyExc_ValueError, "_ckernels.dense_sets: need >= 1 set, as many label arrays, and C >= 2");
        return NULL;
    }
    Buf *hb = calloc((size_t)ns * 2, sizeof(Buf));
    if (!hb) return PyErr_NoMemory();
    Buf Wb = {0}, bb = {0}, vb = {0}, mb = {0}, cb = {0}, kb = {0};
    double *base = NULL;
    int64_t *counts = NULL;
    PyObject *ret = NULL;
    int d = -1;
    for (Py_ssize_t s = 0; s < ns; s++) {
        Buf *h = hb + 2 * s, *yb = hb + 2 * s + 1;
        if (get_buf(PyTuple_GET_ITEM(feats, s), h, "fd", -1, 0, "features") != 0) goto done;
        if (h->view.ndim != 2 || h->view.shape[0] < 1 || (d >= 0 && h->view.shape[1] != d)) {
            PyErr_SetString(PyExc_ValueError, "_ckernels.dense_sets: features must be non-empty, 2-d, of one width");
            goto done;
        }
        d = (int)h->view.shape[1];
        if (get_buf(PyTuple_GET_ITEM(labels, s), yb, "lq", h->view.shape[0], 0, "labels") != 0) goto done;
        const int64_t *y = yb->view.buf;
        for (Py_ssize_t i = 0; i < h->view.shape[0]; i++)
            if (y[i] < 0 || y[i] >= C) {
                PyErr_SetString(PyExc_ValueError, "_ckernels.dense_sets: a label is outside 0..C-1");
                goto done;
            }
    }
    const int has_w = Wo != Py_None;
    if (has_w && get_buf(Wo, &Wb, "d", (Py_ssize_t)C * d, 0, "W") != 0) goto done;
    if (has_w && bo != Py_None && get_buf(bo, &bb, "d", C, 0, "b") != 0) goto done;
    const int m = scatter ? d : C;
    if (get_buf(valso, &vb, "d", ns * NV, 1, "vals") != 0 ||
        get_buf(meanso, &mb, "d", ns * (Py_ssize_t)C * d, 1, "means") != 0 ||
        get_buf(cmo, &cb, "d", ns * (Py_ssize_t)C * d, 1, "cmeans") != 0 ||
        get_buf(matso, &kb, "d", ns * (Py_ssize_t)m * m, 1, "mats") != 0)
        goto done;
    const size_t nwork = work_doubles(C, d) + (size_t)C * C;
    Py_ssize_t nmax = 0;
    for (Py_ssize_t s = 0; s < ns; s++)
        if (hb[2 * s].view.shape[0] > nmax) nmax = hb[2 * s].view.shape[0];
    base = malloc(sizeof(double) * (nwork + (size_t)nmax * d));
    counts = malloc(sizeof(int64_t) * C);
    if (!base || !counts) {
        PyErr_NoMemory();
        goto done;
    }
    Shared sh = {.C = C, .d = d, .has_w = has_w, .pairwise = pairwise, .scatter = scatter, .p = p,
                 .W = has_w ? Wb.view.buf : NULL, .b = bb.held ? bb.view.buf : NULL,
                 .dw = base + work_doubles(C, d)};
    Work w;
    work_carve(&w, base, C, d);
    w.counts = counts;
    long bad = -1;
    Py_BEGIN_ALLOW_THREADS
    if (has_w) classifier_stats(&sh, w.G, w.sq, w.nrm, w.inv, w.cos);
    for (Py_ssize_t s = 0; s < ns; s++) {
        const Buf *h = hb + 2 * s;
        const int f32 = h->view.itemsize == 4;
        if (one_set(&sh, &w, h->view.buf, f32, hb[2 * s + 1].view.buf, h->view.shape[0], base + nwork,
                    (double *)vb.view.buf + s * NV, (double *)mb.view.buf + s * (size_t)C * d,
                    (double *)cb.view.buf + s * (size_t)C * d, (double *)kb.view.buf + s * (size_t)m * m)) {
            bad = (long)s;
            break;
        }
    }
    Py_END_ALLOW_THREADS
    ret = PyLong_FromLong(bad);
done:
    for (Py_ssize_t s = 0; s < 2 * ns; s++) release(hb + s);
    release(&Wb); release(&bb); release(&vb); release(&mb); release(&cb); release(&kb);
    free(hb);
    free(base);
    free(counts);
    return ret;
}

/* argmax_hits(Z, labels, other) -> (hits, other_hits)
 *
 * Z (N, C) float32 or float64 C-contiguous; labels and other (N,) int64 (other may be None). How
 * many rows have their first-index arg max (a NaN counts as the maximum, as in torch.argmax) equal
 * to labels, and to other. */
static PyObject *argmax_hits(PyObject *self, PyObject *args) {
    PyObject *Zo, *yo, *oo;
    if (!PyArg_ParseTuple(args, "OOO", &Zo, &yo, &oo)) return NULL;
    Buf zb = {0}, yb = {0}, ob = {0};
    PyObject *ret = NULL;
    if (get_buf(Zo, &zb, "fd", -1, 0, "logits") != 0) return NULL;
    if (zb.view.ndim != 2 || zb.view.shape[1] < 1) {
        PyErr_SetString(PyExc_ValueError, "_ckernels.argmax_hits: logits must be 2-d with >= 1 column");
        goto done;
    }
    const Py_ssize_t N = zb.view.shape[0];
    const int C = (int)zb.view.shape[1];
    if (get_buf(yo, &yb, "lq", N, 0, "labels") != 0) goto done;
    if (oo != Py_None && get_buf(oo, &ob, "lq", N, 0, "other labels") != 0) goto done;
    long long h1 = 0, h2 = 0;
    const int64_t *y = yb.view.buf, *o = ob.held ? ob.view.buf : NULL;
    const int f32 = zb.view.itemsize == 4;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < N; i++) {
        const int pi = f32 ? first_argmax_f((const float *)zb.view.buf + (size_t)i * C, C)
                           : first_argmax_d((const double *)zb.view.buf + (size_t)i * C, C);
        h1 += pi == y[i];
        if (o) h2 += pi == o[i];
    }
    Py_END_ALLOW_THREADS
    ret = Py_BuildValue("LL", h1, h2);
done:
    release(&zb); release(&yb); release(&ob);
    return ret;
}

static PyMethodDef methods[] = {
    {"dense_sets", dense_sets, METH_VARARGS, "The dense engine's metric sets (see the C source)."},
    {"argmax_hits", argmax_hits, METH_VARARGS, "Arg-max accuracy counts of logits (see the C source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, .m_name = "_ckernels", .m_doc = NULL, .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__ckernels(void) {
    PyObject *mod = PyModule_Create(&moduledef);
    if (mod && PyModule_AddIntConstant(mod, "NV", NV) != 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
