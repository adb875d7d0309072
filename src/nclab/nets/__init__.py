"""Networks for collapse experiments: MLP (+BN), CIFAR ResNet18 / VGG13, fixed simplex-ETF heads.

Every network is a :class:`TappedNet`: named blocks (taps) then a head, so that features of any
layer come out of the same forward pass (:meth:`TappedNet.forward_taps`).
"""

from __future__ import annotations

from nclab.nets.base import TappedNet
from nclab.nets.heads import FixedETFHead, random_orthogonal, simplex_etf
from nclab.nets.spec import NetSpec, build_net

__all__ = ["FixedETFHead", "NetSpec", "TappedNet", "build_net", "random_orthogonal", "simplex_etf"]
