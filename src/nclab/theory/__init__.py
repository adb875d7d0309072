"""Closed forms of the unconstrained-features models, each with its condition of validity.

===============================  ===========================================================
function                         source
===============================  ===========================================================
:func:`positive_nc_norms`        Nguyen et al. (ICLR 2023), Thm 3.2 (corrected constants)
:func:`mse_ufm_minimizer`        Tirer & Bruna (ICML 2022), Thm 3.1 (no bias), 3.2 (free bias)
:func:`mse_ufm_threshold`        the K sqrt(n lambda_H lambda_W) >= 1 zero-minimiser threshold
:func:`softmax_ufm_minimizer`    plain CE / LS UFM (seed 001 App. B.1), norms derived here
:func:`extended_mse_minimizer`   Tirer & Bruna eq. (23), Thm 4.1 (norms derived here)
:func:`extended_structure`       structural statements of Tirer & Bruna Thms 4.1 / 4.2
:func:`min_ce_loss_norm_bounded` Pan (2023), Thm 2.3.1: least CE under norm bounds
:func:`cosine_similarity_limits` Pan (2023), Thm 2.3.1: intra 1, inter -1/(C-1) at the optimum
:func:`fixed_etf_minimizer`      fixed simplex-ETF classifier (seed 002 Sec. 5.2)
:func:`margin_bound_terms`       seed 002 Thm 4.1 p_min, Cor. 4.5, Thm 4.8 / 4.10 terms
:func:`bn_mean_sq_norm`          Pan (2023), Prop. 2.2.1: feature norm after batch norm
===============================  ===========================================================

Derivations and every correction of the sources: ``docs/theory.md``.
"""

from nclab.theory import (batchnorm, fixed_etf, margins, mse_ufm, norm_bounded, positive, softmax_ufm,
                          structure)
from nclab.theory.batchnorm import bn_mean_sq_norm, bn_norm_identity_check
from nclab.theory.margins import MARGIN_TERMS, margin_bound_terms, pair_margins
from nclab.theory.fixed_etf import FixedETFSolution, fixed_etf_minimizer, margin_loss
from nclab.theory.mse_ufm import (
    ExtendedUFMSolution,
    MSEUFMSolution,
    extended_mse_minimizer,
    extended_mse_threshold,
    mse_ufm_minimizer,
    mse_ufm_threshold,
)
from nclab.theory.norm_bounded import (
    class_cosine_similarities,
    cosine_similarity_limits,
    min_ce_loss_norm_bounded,
)
from nclab.theory.softmax_ufm import SoftmaxUFMSolution, softmax_ufm_minimizer
from nclab.theory.positive import PositiveNCSolution, positive_nc_norms, positive_nc_paper_condition
from nclab.theory.structure import (
    class_means,
    extended_structure,
    normalized_distance,
    orthogonal_frame_error,
    simplex_etf,
    simplex_etf_error,
    within_class_relative,
)

# the package exports exactly what its modules export (each module's __all__ is the one list)
__all__: list[str] = []
__all__ += positive.__all__
__all__ += mse_ufm.__all__
__all__ += softmax_ufm.__all__
__all__ += fixed_etf.__all__
__all__ += norm_bounded.__all__
__all__ += structure.__all__
__all__ += margins.__all__
__all__ += batchnorm.__all__
