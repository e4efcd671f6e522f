"""Reusable layers of the model zoo, one idea per file (as timm's ``layers``).

Attention modules offer ``forward_with_mask(x) -> (out, mask)`` beside ``forward`` so a model can hand
its masks to ``attention_maps`` without storing them on the module (models are shared across threads by
the dashboard). Stochastic depth (DropPath) comes from timm where a model needs it.
"""

from .cbam import CBAM
from .channel_attention import ChannelAttention, SqueezeExcite
from .gem import GeM, gem
from .selective_kernel import SelectiveKernel, branch_shares
from .spatial_attention import SpatialAttention, channel_pool
from .spatial_transformer import IDENTITY_THETA, AffineSpatialTransformer, sampling_lattice

__all__ = [
    "CBAM",
    "IDENTITY_THETA",
    "AffineSpatialTransformer",
    "ChannelAttention",
    "GeM",
    "SelectiveKernel",
    "SpatialAttention",
    "SqueezeExcite",
    "branch_shares",
    "channel_pool",
    "gem",
    "sampling_lattice",
]
