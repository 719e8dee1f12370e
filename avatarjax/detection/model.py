"""A 1D-CNN autoencoder for univariate windows, and the standardization shared by its users.

Encoder: `len(channels)` strided convolutions (stride 2, ReLU), then a 1x1 convolution to
`latent_channels`. Decoder: per level, nearest-neighbour upsampling by 2 followed by a
convolution (ReLU), then a linear convolution to one channel. Upsampling plus convolution
replaces transposed convolutions because it avoids their checkerboard artefacts and runs
faster on CPU in XLA. Windows whose length is not a multiple of 2^depth are padded at the
end by repeating the last value, and the output is cropped back to the input length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


class ConvAutoencoder(nn.Module):
    channels: Sequence[int] = (16, 32, 32)
    kernel_size: int = 7
    latent_channels: int = 8

    @nn.compact
    def __call__(self, windows):
        """Reconstruct standardized windows of shape (batch, length)."""
        length = windows.shape[-1]
        factor = 2 ** len(self.channels)
        padded_length = -(-length // factor) * factor
        hidden = jnp.pad(windows, ((0, 0), (0, padded_length - length)), mode="edge")[..., None]

        for features in self.channels:
            hidden = nn.relu(nn.Conv(features, (self.kernel_size,), strides=(2,), padding="SAME")(hidden))
        hidden = nn.Conv(self.latent_channels, (1,))(hidden)

        for features in reversed(self.channels):
            hidden = jnp.repeat(hidden, 2, axis=1)
            hidden = nn.relu(nn.Conv(features, (self.kernel_size,), padding="SAME")(hidden))
        hidden = nn.Conv(1, (self.kernel_size,), padding="SAME")(hidden)
        return hidden[:, :length, 0]


@dataclass(frozen=True)
class Standardization:
    """Mean and standard deviation of all values of the original training windows.

    Both models and every scored series use this one standardization, fitted on the
    original training windows only, so the original and avatar models see the same scale.
    """

    mean: float
    std: float

    @classmethod
    def fit(cls, windows: np.ndarray) -> "Standardization":
        std = float(np.std(windows))
        # A constant training set has no spread; dividing by 1 keeps the values finite.
        return cls(mean=float(np.mean(windows)), std=std if std > 0 else 1.0)

    def apply(self, values: np.ndarray) -> np.ndarray:
        return ((np.asarray(values, dtype=np.float64) - self.mean) / self.std).astype(np.float32)
