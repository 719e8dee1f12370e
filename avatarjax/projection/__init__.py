"""Projections of segments into coordinates where avatars are generated, each with its inverse."""

from avatarjax.projection import static
from avatarjax.projection.fpca import FPCA, fit_fpca, inverse_transform, quadrature_weights, transform
from avatarjax.projection.static import StaticProjection, fit_static

# transform and inverse_transform above are the FPCA ones, so the static ones get a suffix here.
# The static module also exports encode, reconstruct and reconstruct_encoded, for jitted use.
transform_static = static.transform
inverse_transform_static = static.inverse_transform

__all__ = [
    "FPCA",
    "StaticProjection",
    "fit_fpca",
    "fit_static",
    "inverse_transform",
    "inverse_transform_static",
    "quadrature_weights",
    "static",
    "transform",
    "transform_static",
]
