"""Projections of segments into coordinates where avatars are generated, each with its inverse."""

from avatarjax.projection.fpca import FPCA, fit_fpca, inverse_transform, quadrature_weights, transform

__all__ = ["FPCA", "fit_fpca", "inverse_transform", "quadrature_weights", "transform"]
