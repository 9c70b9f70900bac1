"""What the EAZY informer learns, as a frozen record of plain arrays (`EazyModel`).

Stored by the EAZY stages as a pickle-free ``.npz`` (`rail.deepdisc.peers.model_io`): zero points, template
error amplitude, and an optional apparent-magnitude prior p(z | m).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rail.deepdisc.exceptions import ConfigError
from rail.deepdisc.peers.eazy_paths import DEFAULT_EAZY_TEMPLATES

__all__ = ["EazyModel"]


@dataclass(frozen=True)
class EazyModel:
    """What the EAZY informer learns (all optional: the defaults mean "untrained").

    Parameters
    ----------
    bands : tuple of str
        Bands the model was trained for.
    zero_points : ndarray (B,)
        Multiplicative flux corrections (eazy's ``zp``), 1 = none.
    temp_err_a2 : float
        Template error amplitude; NaN = keep the estimator's setting.
    prior_band : str
        Band of the magnitude prior, "" for no prior.
    prior_mags : ndarray (M,)
        Magnitudes of the prior columns.
    prior_z : ndarray (K,)
        Redshifts of the prior rows.
    prior_density : ndarray (K, M)
        p(z | m) columns.
    templates : str
        Template set the model was trained with.
    """

    bands: tuple[str, ...]
    zero_points: np.ndarray
    temp_err_a2: float = float("nan")
    prior_band: str = ""
    prior_mags: np.ndarray = field(default_factory=lambda: np.zeros(0))
    prior_z: np.ndarray = field(default_factory=lambda: np.zeros(0))
    prior_density: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    templates: str = DEFAULT_EAZY_TEMPLATES

    def __post_init__(self):
        if len(self.zero_points) != len(self.bands) or not np.all(np.asarray(self.zero_points) > 0):
            raise ConfigError(
                f"EAZY model: need one positive zero point per band ({len(self.bands)}), "
                f"got {np.asarray(self.zero_points).tolist()}"
            )
        if self.prior_band and self.prior_density.shape != (len(self.prior_z), len(self.prior_mags)):
            raise ConfigError("EAZY model: prior_density must have shape (len(prior_z), len(prior_mags))")

    @property
    def has_prior(self) -> bool:
        """Whether a magnitude prior was trained."""
        return bool(self.prior_band)

    def to_dict(self) -> dict:
        """Plain arrays and strings (for `rail.deepdisc.peers.model_io`)."""
        return {
            "bands": np.array(self.bands),
            "zero_points": np.asarray(self.zero_points, float),
            "temp_err_a2": np.float64(self.temp_err_a2),
            "prior_band": np.str_(self.prior_band),
            "prior_mags": self.prior_mags,
            "prior_z": self.prior_z,
            "prior_density": self.prior_density,
            "templates": np.str_(self.templates),
        }

    @classmethod
    def from_dict(cls, data: dict) -> EazyModel:
        """Inverse of `to_dict`."""
        return cls(
            bands=tuple(str(b) for b in data["bands"]),
            zero_points=np.asarray(data["zero_points"], float),
            temp_err_a2=float(data["temp_err_a2"]),
            prior_band=str(data["prior_band"]),
            prior_mags=np.asarray(data["prior_mags"], float),
            prior_z=np.asarray(data["prior_z"], float),
            prior_density=np.asarray(data["prior_density"], float),
            templates=str(data["templates"]),
        )
