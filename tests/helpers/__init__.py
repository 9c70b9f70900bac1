"""Shared test helpers: small data sets, fake networks, subprocess runners."""
