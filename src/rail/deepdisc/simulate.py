"""The simulator's public API (`rail.deepdisc.simulation`), re-exported under a short name.

>>> from rail.deepdisc.simulate import SimulationSettings, simulate_tileset  # doctest: +SKIP
"""

from .simulation import SimulationSettings, simulate_mosaics, simulate_tileset

__all__ = ["SimulationSettings", "simulate_tileset", "simulate_mosaics"]
