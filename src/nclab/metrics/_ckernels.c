/* Compiled kernels of the dense engine (nclab.metrics._dense): the whole metric set of one or
 * more small feature sets against one classifier in a single call, and the arg-max accuracy counts
 * of a tracked evaluation.
 *
 * Why C: at the sizes of a tracked epoch (n ~ 4000, d = C = 10) the NumPy code is ~130 calls on
 * small arrays, ~0.9 ms of fixed call overhead of its 1.4 ms; here the same arithmetic is two
 * passes over the samples and O(C^2 d) loops, 0.36-0.45 ms. Built at install time (setup.py,
 * optional: without a C compiler nclab runs the NumPy code). No NumPy C API: arrays arrive through
 * the buffer protocol and results are written into arrays the caller allocated; the products of
 * larger problems and the eigendecompositions use SciPy's BLAS/LAPACK through the function pointers
 * SciPy exports (set_lapack).
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

/* The interface version nclab/metrics/_dense.py expects (a stale build of an older source is not used). */
#define KERNEL_VERSION 3

/* Columns of dense_sets' value array, one row per set (nclab/metrics/_dense.py names them). */
enum {
    V_CDNV, V_EQUINORM, V_EQUIANGULAR, V_ETF, V_OF, V_GVAR, V_LVAR, V_INTRA_MIN, V_INTRA_MEAN,
    V_INTER_MAX, V_EQUINORM_W, V_EQUIANGULAR_W, V_ETF_W, V_NC3_ETF, V_OF_W, V_DUALITY, V_UNC3,
    V_NC1, V_NC1_QUOTIENT, V_TRACE_B, V_NCC_ACC, V_ACC, V_NC4, V_MARGIN_MIN, V_MARGIN_MEAN, V_MARGIN_NORM,
    V_ALL_ZERO, V_SOME_ZERO, NV
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

/* First index of the maximum of q[0..C) (a NaN counts as the maximum, as in argmax), for float64
 * (first_argmax_d) and float32 (first_argmax_f) rows. */
#define FIRST_ARGMAX(NAME, T)                       \
    static inline int NAME(const T *q, int C) {     \
        T best = q[0];                              \
        if (best != best) return 0;                 \
        int p = 0;                                  \
        for (int t = 1; t < C; t++) {               \
            const T v = q[t];                       \
            if (v != v) return t;                   \
            if (v > best) {                         \
                best = v;                           \
                p = t;                              \
            }                                       \
        }                                           \
        return p;                                   \
    }
FIRST_ARGMAX(first_argmax_d, double)
FIRST_ARGMAX(first_argmax_f, float)

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

/* ---- BLAS and LAPACK: SciPy's, through the function pointers its Cython modules export ------ */

typedef void dgemm_t(char *, char *, int *, int *, int *, double *, double *, int *, double *, int *, double *,
                     double *, int *);
typedef void dsyrk_t(char *, char *, int *, int *, double *, double *, int *, double *, double *, int *);
typedef void dsyevd_t(char *, char *, int *, double *, int *, double *, double *, int *, int *, int *, int *);
static dgemm_t *blas_dgemm;
static dsyrk_t *blas_dsyrk;
static dsyevd_t *lapack_dsyevd;

static void *capsule_pointer(PyObject *cap) {
    return PyCapsule_GetPointer(cap, PyCapsule_GetName(cap));
}

/* set_lapack(dgemm, dsyrk, dsyevd): the capsules of scipy.linalg.cython_blas / cython_lapack. */
static PyObject *set_lapack(PyObject *self, PyObject *args) {
    PyObject *a, *b, *c;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyCapsule_Type, &a, &PyCapsule_Type, &b, &PyCapsule_Type, &c)) return NULL;
    void *pa = capsule_pointer(a), *pb = capsule_pointer(b), *pc = capsule_pointer(c);
    if (!pa || !pb || !pc) return NULL;
    blas_dgemm = (dgemm_t *)pa;
    blas_dsyrk = (dsyrk_t *)pb;
    lapack_dsyevd = (dsyevd_t *)pc;
    Py_RETURN_NONE;
}

/* Row-major Cm (m, n) = A (m, k) B (k, n) (leading dimensions lda, ldb, ldc): the column-major
 * product Cm^T = B^T A^T. */
static void matmul(int m, int n, int k, const double *A, int lda, const double *B, int ldb, double *Cm, int ldc) {
    char N = 'N';
    double one = 1.0, zero = 0.0;
    blas_dgemm(&N, &N, &n, &m, &k, &one, (double *)B, &ldb, (double *)A, &lda, &zero, Cm, &ldc);
}

/* S (d, d) = R^T R for row-major R (n, d), both triangles. */
static void gram_t(const double *R, Py_ssize_t n, int d, double *S) {
    char U = 'U', N = 'N';
    int nn = (int)n, dd = d;
    double one = 1.0, zero = 0.0;
    /* column-major R is R^T (d, n): S = R^T (R^T)^T, upper triangle column-major = lower row-major */
    blas_dsyrk(&U, &N, &dd, &nn, &one, (double *)R, &dd, &zero, S, &dd);
    for (int a = 0; a < d; a++)
        for (int b = a + 1; b < d; b++) S[(size_t)a * d + b] = S[(size_t)b * d + a];
}

/* NC1 = tr(Sigma_W pinv(Sigma_B)) / C as nclab.metrics._kernels.nc1_value: from the centred means M
 * (C, d), their Gram G = M M^T and the NC1 matrix `mat` (the within-class scatter S (d, d) when
 * `scatter`, else K = M S M^T (C, C)). C <= d or K given: eigenvectors v_k of M M^T, NC1 =
 * (1/n) sum_{lambda_k > 0} v_k^T K v_k / lambda_k^2; C > d: eigenvectors of Sigma_B = M^T M / C in
 * d-space, NC1 = (1/(n C)) sum v_k^T S v_k / lambda_k. Eigenvalues at most max(C, d) eps lambda_max
 * (d eps in d-space) count as 0, as in a pseudo-inverse; NaN when every one does. `ws` holds
 * nc1_doubles(C, d) doubles and `iws` 3 + 5 C ints. */
static size_t nc1_doubles(int C, int d) { /* the eigenproblem is at most C x C (d < C in d-space) */
    return 4 * (size_t)C * C + 8 * (size_t)C + 1 + (size_t)C * d;
}

static double nc1_from(const double *M, const double *G, const double *mat, int scatter, int C, int d, double n,
                       double *ws, int *iws) {
    const double eps = 2.220446049250313e-16;
    const int dspace = scatter && C > d;
    const int m = dspace ? d : C;
    double *V = ws, *A = ws + (size_t)m * m, *lam = A + (size_t)m * m, *tmp = lam + m, *work = tmp + m;
    double tol, scale;
    if (dspace) {
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++) {
                double s = 0.0;
                for (int c = 0; c < C; c++) s += M[(size_t)c * d + a] * M[(size_t)c * d + b];
                V[a * d + b] = s / C;
            }
        memcpy(A, mat, sizeof(double) * d * d);
        tol = d * eps;
        scale = n * C;
    } else {
        memcpy(V, G, sizeof(double) * C * C);
        if (scatter) { /* K = (M S) M^T */
            double *MS = work + 1 + 6 * m + 2 * m * m; /* C x d */
            for (int c = 0; c < C; c++)
                for (int b = 0; b < d; b++) {
                    double s = 0.0;
                    for (int k = 0; k < d; k++) s += M[(size_t)c * d + k] * mat[(size_t)k * d + b];
                    MS[(size_t)c * d + b] = s;
                }
            gram(MS, C, M, C, d, A);
        } else {
            memcpy(A, mat, sizeof(double) * C * C);
        }
        tol = (C > d ? C : d) * eps;
        scale = n;
    }
    char jobz = 'V', uplo = 'U';
    int mm = m, lwork = 1 + 6 * m + 2 * m * m, liwork = 3 + 5 * m, info = 0;
    lapack_dsyevd(&jobz, &uplo, &mm, V, &mm, lam, work, &lwork, iws, &liwork, &info);
    if (info != 0) return NAN;
    const double top = lam[m - 1]; /* ascending */
    const double cut = tol * (top > 0 ? top : 0.0);
    double total = 0.0;
    int kept = 0;
    for (int k = 0; k < m; k++) { /* eigenvector k: column k of column-major V, contiguous */
        if (!(lam[k] > cut)) continue;
        const double *v = V + (size_t)k * m;
        for (int a = 0; a < m; a++) {
            double s = 0.0;
            for (int b = 0; b < m; b++) s += A[(size_t)a * m + b] * v[b];
            tmp[a] = s;
        }
        double quad = 0.0;
        for (int a = 0; a < m; a++) quad += v[a] * tmp[a];
        total += quad / (dspace ? lam[k] : lam[k] * lam[k]);
        kept = 1;
    }
    return kept ? total / scale : NAN;
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
    double *sum, *usum, *mean, *M, *Mt, *Sb, *var, *sqdev, *P, *A, *G, *G2, *sq, *nrm, *inv, *cos, *gd, *lg, *q, *mu,
        *mat, *ws, *x, *S;
    int64_t *counts;
    int *iws;
} Work;

#define N_PARTS 24
#define SMALL_D 16 /* beyond it BLAS scatters faster (measured at n = 8000, d = 20: 0.80 ms, fused 1.38 ms) */
#define SMALL_T 32

static inline int round4(int k) { return (k + 3) & ~3; }

/* Sizes (doubles) of the parts of Work, in the order of work_carve. */
static void work_parts(int C, int d, size_t *parts) {
    const size_t CC = (size_t)C * C, Cd = (size_t)C * d;
    const int ds = d <= SMALL_D ? d : 0;                       /* the fused pass's padded scatter */
    const int dm = (d <= SMALL_D || d * d <= C * (d + C) || C > d) ? d : 0; /* a d x d NC1 matrix */
    const size_t mm = (size_t)(dm > C ? dm : C);
    const size_t sizes[N_PARTS] = {Cd, Cd, Cd, Cd, Cd, Cd, C, C, (size_t)(d + 1) * (2 * C + 4), CC, CC, CC, C, C, C,
                                   CC, CC, CC, 2 * (2 * (size_t)C + 4), d, mm * mm, nc1_doubles(C, d),
                                   2 * (size_t)round4(d), (size_t)ds * round4(ds)};
    memcpy(parts, sizes, sizeof sizes);
}

static size_t work_doubles(int C, int d) {
    size_t parts[N_PARTS], t = 0;
    work_parts(C, d, parts);
    for (int i = 0; i < N_PARTS; i++) t += parts[i];
    return t;
}

static void work_carve(Work *w, double *base, int C, int d) {
    size_t parts[N_PARTS];
    work_parts(C, d, parts);
    double **dst[N_PARTS] = {&w->sum, &w->usum, &w->mean, &w->M, &w->Mt, &w->Sb, &w->var, &w->sqdev, &w->P,
                             &w->A, &w->G, &w->G2, &w->sq, &w->nrm, &w->inv, &w->cos, &w->gd, &w->lg, &w->q,
                             &w->mu, &w->mat, &w->ws, &w->x, &w->S};
    for (int i = 0; i < N_PARTS; i++) {
        *dst[i] = base;
        base += parts[i];
    }
}

/* Hot loops are compiled twice on x86-64 (AVX2 and baseline SSE2; the loader picks one). Floating
 * point contraction stays off (-ffp-contract=off in setup.py): every score is the same sequence of
 * IEEE operations, so classes with equal parameters get equal scores and arg-max ties stay ties. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

/* Row i of H (float32 or float64) as float64 into x. */
static inline void load_row(const void *H, int f32, Py_ssize_t i, int d, double *restrict x) {
    if (f32) {
        const float *restrict h = (const float *)H + (size_t)i * d;
        for (int k = 0; k < d; k++) x[k] = (double)h[k];
    } else {
        memcpy(x, (const double *)H + (size_t)i * d, sizeof(double) * d);
    }
}

/* Pass 1 of one set: class sums of the rows and of the unit rows (a zero row contributes 0), class
 * counts; the rows as float64 into X (n, d) unless X is NULL (then d <= SMALL_D: the fused pass
 * reads H again). */
HOT static void pass_sums(const void *H, int f32, const int64_t *restrict y, Py_ssize_t n, int d,
                          double *restrict X, double *restrict sum, double *restrict usum, int64_t *restrict counts) {
    double row[SMALL_D];
    for (Py_ssize_t i = 0; i < n; i++) {
        double *restrict x = X ? X + (size_t)i * d : row;
        load_row(H, f32, i, d, x);
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

/* Index of the first entry of q[0..C) equal to mx (the row's maximum, no NaN in the row), without
 * a data-dependent branch. */
static inline int first_equal(const double *q, int C, double mx) {
    int p = C;
    for (int t = C - 1; t >= 0; t--) p = q[t] == mx ? t : p;
    return p;
}

/* Maximum of q[0..C) (no NaN in the row), two interleaved chains. */
static inline double row_max(const double *q, int C) {
    double a = q[0], b = C > 1 ? q[1] : q[0];
    int t = 2;
    for (; t + 1 < C; t += 2) {
        a = q[t] > a ? q[t] : a;
        b = q[t + 1] > b ? q[t + 1] : b;
    }
    if (t < C) a = q[t] > a ? q[t] : a;
    return a > b ? a : b;
}

/* The decisions of one sample of class c from its scores q (T,): columns 0..C-1 the NCC scores,
 * C..2C-1 the logits with a classifier. NCC and classifier arg maxes, the margin (own logit - best
 * other) and the directed pair minima A[c, t] = min over class c of z_c - z_t (row arow; A[c, c]
 * is never read). A row without NaN takes branch-free maxima and minima (own - max_t z_t equals
 * min_t (own - z_t): rounding is monotone); a row with a NaN the NaN-propagating path of NumPy's
 * argmax and minimum. */
static inline void decide_row(const double *restrict q, int c, int C, int T, int has_w, double *restrict arow,
                              Tally *restrict tl) {
    int nan = 0;
    for (int t = 0; t < T; t++) nan |= q[t] != q[t];
    const double *zl = q + C;
    if (nan) {
        const int p0 = first_argmax_d(q, C);
        tl->ncc += p0 == c;
        if (!has_w) return;
        const int p1 = first_argmax_d(zl, C);
        tl->acc += p1 == c;
        tl->differ += p1 != p0;
        const double own = zl[c];
        double mg = INFINITY;
        for (int t = 0; t < C; t++)
            if (t != c) {
                const double v = own - zl[t];
                mg = nan_min(mg, v);
                arow[t] = nan_min(arow[t], v);
            }
        tl->mmin = nan_min(tl->mmin, mg);
        tl->msum += mg;
        return;
    }
    const int p0 = first_equal(q, C, row_max(q, C));
    tl->ncc += p0 == c;
    if (!has_w) return;
    const double m1 = row_max(zl, C);
    const int p1 = first_equal(zl, C, m1);
    double mo = -INFINITY; /* the best other class: the maximum unless it is c alone */
    if (p1 != c) {
        mo = m1;
    } else {
        for (int t = 0; t < C; t++) mo = (t != c && zl[t] > mo) ? zl[t] : mo;
    }
    tl->acc += p1 == c;
    tl->differ += p1 != p0;
    const double own = zl[c];
    for (int t = 0; t < C; t++) { /* NaN-free row: a NaN already in A stays (v < NaN is false) */
        const double v = own - zl[t];
        arow[t] = v < arow[t] ? v : arow[t];
    }
    const double mg = own - mo;
    tl->mmin = nan_min(tl->mmin, mg);
    tl->msum += mg;
}

/* Decisions of one set from its scores Q (n, T) computed by BLAS without the constants pd (T,). */
HOT static void pass_decide(const double *restrict Q, const double *restrict pd, const int64_t *restrict y,
                            Py_ssize_t n, int C, int T, int has_w, double *restrict Am, double *restrict q, Tally *tl) {
    Tally t = {0, 0, 0, INFINITY, 0.0};
    for (Py_ssize_t i = 0; i < n; i++) {
        const double *restrict qi = Q + (size_t)i * T;
        for (int k = 0; k < T; k++) q[k] = qi[k] + pd[k];
        const int c = (int)y[i];
        decide_row(q, c, C, T, has_w, Am + (size_t)c * C, &t);
    }
    *tl = t;
}

/* ---- the fused pass of small problems (d <= SMALL_D, 2C <= SMALL_T) ------------------------- */

typedef double v4d __attribute__((vector_size(32)));

static inline v4d vload(const double *p) {
    v4d v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vstore(double *p, v4d v) { memcpy(p, &v, sizeof v); }

/* Scores of two rows x0, x1: q0, q1 (4 NV,) = Pv[d] + sum_k x_k Pv[k], Pv ((d + 1), 4 NV)
 * row-major; 2 NV accumulators in registers, each row of Pv loaded once for both. */
static inline __attribute__((always_inline)) void scores2_nv(const double *restrict x0, const double *restrict x1,
                                                              int d, const double *restrict Pv, double *restrict q0,
                                                              double *restrict q1, const int NV) {
    v4d acc0[SMALL_T / 4], acc1[SMALL_T / 4];
    const double *pc = Pv + (size_t)d * 4 * NV;
    for (int j = 0; j < NV; j++) acc0[j] = acc1[j] = vload(pc + 4 * j);
    for (int k = 0; k < d; k++) {
        const v4d xb0 = {x0[k], x0[k], x0[k], x0[k]}, xb1 = {x1[k], x1[k], x1[k], x1[k]};
        const double *pk = Pv + (size_t)k * 4 * NV;
        for (int j = 0; j < NV; j++) {
            const v4d pv = vload(pk + 4 * j);
            acc0[j] += xb0 * pv;
            acc1[j] += xb1 * pv;
        }
    }
    for (int j = 0; j < NV; j++) {
        vstore(q0 + 4 * j, acc0[j]);
        vstore(q1 + 4 * j, acc1[j]);
    }
}

/* S (d, 4 DV) += r0 r0^T + r1 r1^T over zero-padded rows of 4 DV doubles (DV = round4(d) / 4). */
static inline __attribute__((always_inline)) void scatter2_dv(double *restrict S, const double *restrict r0,
                                                               const double *restrict r1, int d, const int DV) {
    v4d v0[SMALL_D / 4], v1[SMALL_D / 4];
    for (int j = 0; j < DV; j++) {
        v0[j] = vload(r0 + 4 * j);
        v1[j] = vload(r1 + 4 * j);
    }
    for (int a = 0; a < d; a++) {
        const v4d ra0 = {r0[a], r0[a], r0[a], r0[a]}, ra1 = {r1[a], r1[a], r1[a], r1[a]};
        double *srow = S + (size_t)a * 4 * DV;
        for (int j = 0; j < DV; j++) vstore(srow + 4 * j, vload(srow + 4 * j) + ra0 * v0[j] + ra1 * v1[j]);
    }
}

/* The centred row r (dp,) = x - mean_c, zero-padded beyond d; adds its squared norm to sqdev[c]. */
static inline void centre_row(const double *restrict x, const double *restrict mean, int c, int d,
                              double *restrict r, double *restrict sqdev) {
    const double *restrict mc = mean + (size_t)c * d;
    double s = 0.0;
    for (int k = 0; k < d; k++) {
        r[k] = x[k] - mc[k];
        s += r[k] * r[k];
    }
    sqdev[c] += s;
}

/* Pass 2 of a small set, fused, two rows at a time: per row x of H (n, d), the centred row
 * r = x - mean_y (squared deviations per class; the scatter S (d, dp) += r r^T over padded rows of
 * dp = round4(d) doubles), then the scores q = [x, 1] Pv (Pv (d + 1, Tp), Tp = round4(T),
 * zero-padded) and the decisions. r holds 2 dp doubles and q 2 Tp. With an odd n the last row is
 * paired with itself and counted once. */
HOT static void pass_small(const void *H, int f32, const int64_t *restrict y, Py_ssize_t n, int d, int C, int T,
                           int has_w, const double *restrict mean, const double *restrict Pv, double *restrict S,
                           double *restrict sqdev, double *restrict Am, double *restrict r, double *restrict q,
                           Tally *tl) {
    const int dp = round4(d), Tp = round4(T), NV = Tp / 4;
    double *restrict r0 = r, *restrict r1 = r + dp, *restrict q0 = q, *restrict q1 = q + Tp;
    Tally t = {0, 0, 0, INFINITY, 0.0};
    for (int k = d; k < dp; k++) r0[k] = r1[k] = 0.0;
    for (Py_ssize_t i = 0; i < n; i += 2) {
        const int two = i + 1 < n;
        double x0[SMALL_D], x1[SMALL_D];
        load_row(H, f32, i, d, x0);
        load_row(H, f32, two ? i + 1 : i, d, x1);
        const int c0 = (int)y[i], c1 = two ? (int)y[i + 1] : c0;
        centre_row(x0, mean, c0, d, r0, sqdev);
        if (two) {
            centre_row(x1, mean, c1, d, r1, sqdev);
        } else {
            for (int k = 0; k < d; k++) r1[k] = 0.0; /* contributes nothing to the scatter */
        }
        switch (dp / 4) { /* a constant vector count: the centred rows stay in registers */
        case 1: scatter2_dv(S, r0, r1, d, 1); break;
        case 2: scatter2_dv(S, r0, r1, d, 2); break;
        case 3: scatter2_dv(S, r0, r1, d, 3); break;
        default: scatter2_dv(S, r0, r1, d, 4); break;
        }
        switch (NV) { /* a constant vector count: the accumulators stay in registers */
        case 1: scores2_nv(x0, x1, d, Pv, q0, q1, 1); break;
        case 2: scores2_nv(x0, x1, d, Pv, q0, q1, 2); break;
        case 3: scores2_nv(x0, x1, d, Pv, q0, q1, 3); break;
        case 4: scores2_nv(x0, x1, d, Pv, q0, q1, 4); break;
        case 5: scores2_nv(x0, x1, d, Pv, q0, q1, 5); break;
        case 6: scores2_nv(x0, x1, d, Pv, q0, q1, 6); break;
        case 7: scores2_nv(x0, x1, d, Pv, q0, q1, 7); break;
        default: scores2_nv(x0, x1, d, Pv, q0, q1, 8); break;
        }
        decide_row(q0, c0, C, T, has_w, Am + (size_t)c0 * C, &t);
        if (two) decide_row(q1, c1, C, T, has_w, Am + (size_t)c1 * C, &t);
    }
    *tl = t;
}

/* The rows X (n, d) centred in place on their class means; squared deviations per class. */
HOT static void pass_centre(double *restrict X, const int64_t *restrict y, Py_ssize_t n, int d,
                            const double *restrict mean, double *restrict sqdev) {
    for (Py_ssize_t i = 0; i < n; i++) {
        double *restrict x = X + (size_t)i * d;
        const int c = (int)y[i];
        const double *restrict mc = mean + (size_t)c * d;
        double s = 0.0;
        for (int k = 0; k < d; k++) {
            x[k] -= mc[k];
            s += x[k] * x[k];
        }
        sqdev[c] += s;
    }
}

/* Every metric of one set into vals (NV) and its class means (C, d) into mean_out (unless NULL).
 * X (n, d) and Q (n, 2C) are scratch (unused by the fused pass of small problems). Returns 0; 1
 * when a class's sums are not finite (the caller raises, naming the bad features); 2 when a class
 * has no sample. */
static int one_set(const Shared *sh, Work *w, const void *H, int f32, const int64_t *y, Py_ssize_t n, double *X,
                   double *Q, double *vals, double *mean_out) {
    const int C = sh->C, d = sh->d;
    const size_t Cd = (size_t)C * d;
    memset(w->sum, 0, sizeof(double) * Cd);
    memset(w->usum, 0, sizeof(double) * Cd);
    memset(w->counts, 0, sizeof(int64_t) * C);
    const int T = sh->has_w ? 2 * C : C;
    const int small = d <= SMALL_D && T <= SMALL_T; /* the fused pass, which reads H itself */
    pass_sums(H, f32, y, n, d, small ? NULL : X, w->sum, w->usum, w->counts);
    for (int c = 0; c < C; c++)
        if (w->counts[c] == 0) return 2;
    int finite = 1;
    for (int c = 0; c < C; c++)
        for (int k = 0; k < d; k++) {
            const size_t j = (size_t)c * d + k;
            w->mean[j] = w->sum[j] / (double)w->counts[c];
            w->Sb[j] = w->usum[j] / (double)w->counts[c];
            finite = finite && isfinite(w->mean[j]) && isfinite(w->Sb[j]);
        }
    if (!finite) return 1;
    if (mean_out) memcpy(mean_out, w->mean, sizeof(double) * Cd);
    /* centred means M = mean - mu_G, mu_G the mean of the class means */
    for (int k = 0; k < d; k++) {
        double s = 0.0;
        for (int c = 0; c < C; c++) s += w->mean[(size_t)c * d + k];
        w->mu[k] = s / C;
    }
    for (int c = 0; c < C; c++)
        for (int k = 0; k < d; k++) w->M[(size_t)c * d + k] = w->mean[(size_t)c * d + k] - w->mu[k];

    /* decisions: NCC scores m_c.h - m_c.(m_c/2 + mu_G) (the nearest-mean rule up to a per-sample
     * constant) and logits w_c.h + b_c, the rows of P (d + 1, Tp), constants in row d; the NC1
     * matrix from the centred rows R: the scatter R^T R (d, d), or K = Z^T Z with Z = R M^T (n, C)
     * when that is cheaper (as the NumPy engine chooses) */
    const int Tp = small ? round4(T) : T;
    double *Pm = w->P;
    memset(Pm, 0, sizeof(double) * (size_t)(d + 1) * Tp);
    for (int c = 0; c < C; c++) {
        double cst = 0.0;
        for (int k = 0; k < d; k++) {
            const double mk = w->M[(size_t)c * d + k];
            Pm[(size_t)k * Tp + c] = mk;
            cst += mk * (0.5 * mk + w->mu[k]);
        }
        Pm[(size_t)d * Tp + c] = -cst;
        if (sh->has_w) {
            for (int k = 0; k < d; k++) Pm[(size_t)k * Tp + C + c] = sh->W[(size_t)c * d + k];
            Pm[(size_t)d * Tp + C + c] = sh->b ? sh->b[c] : 0.0;
        }
    }
    for (int i = 0; i < C * C; i++) w->A[i] = INFINITY;
    memset(w->sqdev, 0, sizeof(double) * C);
    Tally tl;
    double *mat = w->mat;
    int scatter = sh->scatter;
    if (small) { /* one fused pass; always the scatter (d <= SMALL_D: at most d^2 per row) */
        const int dp = round4(d);
        double *S = w->S; /* (d, dp) */
        memset(S, 0, sizeof(double) * (size_t)d * dp);
        pass_small(H, f32, y, n, d, C, T, sh->has_w, w->mean, Pm, S, w->sqdev, w->A, w->x, w->q, &tl);
        for (int a = 0; a < d; a++) memcpy(mat + (size_t)a * d, S + (size_t)a * dp, sizeof(double) * d);
        scatter = 1;
    } else { /* BLAS products */
        matmul((int)n, T, d, X, d, Pm, T, Q, T);
        pass_decide(Q, Pm + (size_t)d * T, y, n, C, T, sh->has_w, w->A, w->q, &tl);
        pass_centre(X, y, n, d, w->mean, w->sqdev);
        if (scatter) {
            gram_t(X, n, d, mat);
        } else {
            double *Mt = w->Mt;
            for (int c = 0; c < C; c++)
                for (int k = 0; k < d; k++) Mt[(size_t)k * C + c] = w->M[(size_t)c * d + k];
            matmul((int)n, C, d, X, d, Mt, C, Q, C);
            gram_t(Q, n, C, mat);
        }
    }
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
    if (trace != 0.0) {
        vals[V_NC1] = nc1_from(w->M, G, mat, scatter, C, d, (double)n, w->ws, w->iws);
        vals[V_NC1_QUOTIENT] = sqdev_sum / (double)n / (trace / C);
    }
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

/* dense_sets(feats, labels, C, W, b, p, pairwise, scatter, vals, means) -> int
 *
 * feats, labels: tuples of ns C-contiguous arrays (n_s, d) float32/float64 and (n_s,) int64.
 * W (C, d) and b (C,) float32/float64 or None; p the CDNV exponent; pairwise: compute the
 * normalised pairwise margin; scatter: NC1 through the d x d scatter (else through K = M S M^T).
 * Writes vals (ns, NV) float64 (columns that do not apply are left as the caller filled them) and,
 * unless None, means (ns, C, d) float64, the class means. Returns -1 when every set is done; -2
 * when a value is invalid (a label outside 0..C-1, a class without samples in a set, a non-finite
 * entry of W or b: the caller's validation then says which); else the index of the first set whose
 * class sums are not finite. Nothing is computed after a set that fails. Needs set_lapack first.
 * The GIL is released while the kernel runs. */
static PyObject *dense_sets(PyObject *self, PyObject *args) {
    PyObject *feats, *labels, *Wo, *bo, *valso, *meanso;
    int C, pairwise, scatter;
    double p;
    if (!PyArg_ParseTuple(args, "O!O!iOOdppOO", &PyTuple_Type, &feats, &PyTuple_Type, &labels, &C, &Wo, &bo, &p,
                          &pairwise, &scatter, &valso, &meanso))
        return NULL;
    if (!blas_dgemm || !blas_dsyrk || !lapack_dsyevd) {
        PyErr_SetString(PyExc_RuntimeError, "_ckernels.dense_sets: call set_lapack first");
        return NULL;
    }
    const Py_ssize_t ns = PyTuple_GET_SIZE(feats);
    if (ns < 1 || PyTuple_GET_SIZE(labels) != ns || C < 2) {
        PyErr_SetString(PyExc_ValueError, "_ckernels.dense_sets: need >= 1 set, as many label arrays, and C >= 2");
        return NULL;
    }
    Buf *hb = calloc((size_t)ns * 2, sizeof(Buf));
    if (!hb) return PyErr_NoMemory();
    Buf Wb = {0}, bb = {0}, vb = {0}, mb = {0};
    double *base = NULL;
    int64_t *counts = NULL;
    int *iws = NULL;
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
                ret = PyLong_FromLong(-2);
                goto done;
            }
    }
    const int has_w = Wo != Py_None;
    if (has_w && get_buf(Wo, &Wb, "fd", (Py_ssize_t)C * d, 0, "W") != 0) goto done;
    if (has_w && bo != Py_None && get_buf(bo, &bb, "fd", C, 0, "b") != 0) goto done;
    if (get_buf(valso, &vb, "d", ns * NV, 1, "vals") != 0 ||
        (meanso != Py_None && get_buf(meanso, &mb, "d", ns * (Py_ssize_t)C * d, 1, "means") != 0))
        goto done;
    const size_t nwork = work_doubles(C, d) + (size_t)C * C + (size_t)C * d + C; /* + dw, W, b as float64 */
    Py_ssize_t nmax = 0;
    for (Py_ssize_t s = 0; s < ns; s++)
        if (hb[2 * s].view.shape[0] > nmax) nmax = hb[2 * s].view.shape[0];
    const int fused = d <= SMALL_D && (has_w ? 2 * C : C) <= SMALL_T; /* no (n, d) or (n, 2C) scratch then */
    const size_t nrows = fused ? 0 : (size_t)nmax;
    base = malloc(sizeof(double) * (nwork + nrows * d + nrows * 2 * C));
    counts = malloc(sizeof(int64_t) * C);
    iws = malloc(sizeof(int) * (3 + 5 * (size_t)(C > d ? C : d)));
    if (!base || !counts || !iws) {
        PyErr_NoMemory();
        goto done;
    }
    double *Wd = base + work_doubles(C, d) + (size_t)C * C, *bd = Wd + (size_t)C * d;
    if (has_w) { /* float64 copies; a non-finite entry is the caller's to report */
        const size_t nw = (size_t)C * d;
        for (size_t j = 0; j < nw; j++)
            Wd[j] = Wb.view.itemsize == 4 ? (double)((const float *)Wb.view.buf)[j] : ((const double *)Wb.view.buf)[j];
        for (int c = 0; bb.held && c < C; c++)
            bd[c] = bb.view.itemsize == 4 ? (double)((const float *)bb.view.buf)[c] : ((const double *)bb.view.buf)[c];
        int ok = 1;
        for (size_t j = 0; j < nw; j++) ok = ok && isfinite(Wd[j]);
        for (int c = 0; bb.held && c < C; c++) ok = ok && isfinite(bd[c]);
        if (!ok) {
            ret = PyLong_FromLong(-2);
            goto done;
        }
    }
    Shared sh = {.C = C, .d = d, .has_w = has_w, .pairwise = pairwise, .scatter = scatter, .p = p,
                 .W = has_w ? Wd : NULL, .b = bb.held ? bd : NULL, .dw = base + work_doubles(C, d)};
    Work w;
    work_carve(&w, base, C, d);
    w.counts = counts;
    w.iws = iws;
    long bad = -1;
    Py_BEGIN_ALLOW_THREADS
    if (has_w) classifier_stats(&sh, w.G, w.sq, w.nrm, w.inv, w.cos);
    for (Py_ssize_t s = 0; s < ns; s++) {
        const Buf *h = hb + 2 * s;
        const int f32 = h->view.itemsize == 4;
        const int rc = one_set(&sh, &w, h->view.buf, f32, hb[2 * s + 1].view.buf, h->view.shape[0], base + nwork,
                               base + nwork + nrows * d, (double *)vb.view.buf + s * NV,
                               mb.held ? (double *)mb.view.buf + s * (size_t)C * d : NULL);
        if (rc) {
            bad = rc == 1 ? (long)s : -2;
            break;
        }
    }
    Py_END_ALLOW_THREADS
    ret = PyLong_FromLong(bad);
done:
    for (Py_ssize_t s = 0; s < 2 * ns; s++) release(hb + s);
    release(&Wb); release(&bb); release(&vb); release(&mb);
    free(hb);
    free(base);
    free(counts);
    free(iws);
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

/* noisy_distances(H, y_obs, y_true, means) -> (total, count)
 *
 * H (n, d) float32/float64, y_obs and y_true (n,) int64, means (C, d) float64, all C-contiguous:
 * over the rows whose observed label differs from the true one, the sum of ||h_i - means[y_true_i]||
 * (float64) and their count: memorization (seed 000 eq. 3) with the test class means. A true label
 * outside 0..C-1 is a ValueError. */
static PyObject *noisy_distances(PyObject *self, PyObject *args) {
    PyObject *Ho, *yo, *to, *mo;
    if (!PyArg_ParseTuple(args, "OOOO", &Ho, &yo, &to, &mo)) return NULL;
    Buf hb = {0}, ob = {0}, tb = {0}, mb = {0};
    PyObject *ret = NULL;
    if (get_buf(Ho, &hb, "fd", -1, 0, "features") != 0) return NULL;
    if (hb.view.ndim != 2) {
        PyErr_SetString(PyExc_ValueError, "_ckernels.noisy_distances: features must be 2-d");
        goto done;
    }
    const Py_ssize_t n = hb.view.shape[0];
    const int d = (int)hb.view.shape[1];
    if (get_buf(yo, &ob, "lq", n, 0, "observed labels") != 0 || get_buf(to, &tb, "lq", n, 0, "true labels") != 0 ||
        get_buf(mo, &mb, "d", -1, 0, "means") != 0)
        goto done;
    if (d < 1 || mb.view.len % ((Py_ssize_t)d * 8) != 0) {
        PyErr_SetString(PyExc_ValueError, "_ckernels.noisy_distances: means must be (C, d)");
        goto done;
    }
    const Py_ssize_t C = mb.view.len / ((Py_ssize_t)d * 8);
    const int64_t *y_obs = ob.view.buf, *y_true = tb.view.buf;
    const double *means = mb.view.buf;
    const int f32 = hb.view.itemsize == 4;
    double total = 0.0;
    long long count = 0;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        if (y_obs[i] == y_true[i]) continue;
        const int64_t c = y_true[i];
        if (c < 0 || c >= C) {
            bad = 1;
            break;
        }
        const double *m = means + (size_t)c * d;
        double s = 0.0;
        for (int k = 0; k < d; k++) {
            const double h = f32 ? (double)((const float *)hb.view.buf)[(size_t)i * d + k]
                                 : ((const double *)hb.view.buf)[(size_t)i * d + k];
            s += (h - m[k]) * (h - m[k]);
        }
        total += sqrt(s);
        count++;
    }
    Py_END_ALLOW_THREADS
    if (bad)
        PyErr_SetString(PyExc_ValueError, "_ckernels.noisy_distances: a true label is outside the means' classes");
    else
        ret = Py_BuildValue("dL", total, count);
done:
    release(&hb); release(&ob); release(&tb); release(&mb);
    return ret;
}

static PyMethodDef methods[] = {
    {"set_lapack", set_lapack, METH_VARARGS, "Set the BLAS/LAPACK routines (SciPy's capsules)."},
    {"dense_sets", dense_sets, METH_VARARGS, "The dense engine's metric sets (see the C source)."},
    {"argmax_hits", argmax_hits, METH_VARARGS, "Arg-max accuracy counts of logits (see the C source)."},
    {"noisy_distances", noisy_distances, METH_VARARGS, "Memorization sums (see the C source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, .m_name = "_ckernels", .m_doc = NULL, .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__ckernels(void) {
    PyObject *mod = PyModule_Create(&moduledef);
    if (mod && (PyModule_AddIntConstant(mod, "VERSION", KERNEL_VERSION) != 0 || PyModule_AddIntConstant(mod, "NV", NV) != 0 ||
                PyModule_AddIntConstant(mod, "SMALL_D", SMALL_D) != 0 || PyModule_AddIntConstant(mod, "SMALL_T", SMALL_T) != 0)) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
