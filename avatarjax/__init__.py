"""avatarjax: avatar anonymization of sensor time series in JAX, with privacy and utility metrics."""

__version__ = "0.1.0"
