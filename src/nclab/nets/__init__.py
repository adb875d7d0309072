"""Networks for collapse experiments: MLP (+BN), the CIFAR CNNs (ResNet18, ResNet32, VGG11, VGG13,
DenseNet121), fixed simplex-ETF heads.

Every network is a :class:`TappedNet`: named blocks (taps) then a head, so that features of any
layer come out of the same forward pass (:meth:`TappedNet.forward_taps`). Architectures are named
by ``NetSpec.arch`` (:data:`ARCHS`). The simplex ETF itself lives in :func:`nclab.metrics.simplex_etf`.
"""

from __future__ import annotations

from nclab.nets.base import TappedNet
from nclab.nets.heads import FixedETFHead, classifier_frame, random_orthogonal
from nclab.nets.spec import ARCHS, NetSpec, build_net

__all__ = ["ARCHS", "FixedETFHead", "NetSpec", "TappedNet", "build_net", "classifier_frame", "random_orthogonal"]
