"""Diagnostics of recurrent layers: gradient flow through time, step Jacobian spectra, gate
saturation, recordings of every step, the pictures and the explorer page of `rnnkit diagnose`,
and seed 001's long-range experiments (`rnnkit experiment long-range`).

Every function takes any rnnkit layer (rnnkit.Recurrent and the layers built on it), of every
cell and on every engine; torch.nn layers get a one-line error naming the rnnkit layer to load
their weights into.
"""

from .flow import default_loss, gradient_flow
from .gates import SATURATION, GateStats, Recording, gate_stats, record
from .jacobian import JacobianSpectrum, jacobian_spectrum

__all__ = [
    "SATURATION",
    "GateStats",
    "JacobianSpectrum",
    "Recording",
    "default_loss",
    "gate_stats",
    "gradient_flow",
    "jacobian_spectrum",
    "record",
]
