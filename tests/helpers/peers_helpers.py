"""Synthetic photometric catalogs drawn from the peers' own templates (for the peers' tests and benchmark)."""

import numpy as np

from rail.deepdisc.filters import ab_magnitudes
from rail.deepdisc.peers.photometry import AB_ZEROPOINT_NJY, NONDETECTION_MAG
from rail.deepdisc.peers.templates import igm_transmission, load_template_set, template_fluxes

#: Bands fainter than this fraction of an object's median flux get this floor as noise reference (dropouts).
DROPOUT_FLOOR = 0.1


def synthetic_catalog(
    bands,
    n,
    snr,
    *,
    seed=0,
    templates="CWWSB4",
    igm="eazy",
    z_range=(0.2, 6.0),
    ref_mag_range=(24.0, 26.0),
    offsets_mag=None,
    template_indices=None,
):
    """A catalog of n galaxies: random template and redshift, every band at S/N = snr (dropouts: noise floor).

    Noise per band is max(f_b, DROPOUT_FLOOR * median f) / snr, in flux; fluxes below one sigma become
    non-detections (mag 99, magerr = 1-sigma limit). ``offsets_mag`` (B,) are added to the observed magnitudes
    (zero-point errors to be recovered).
    """
    rng = np.random.default_rng(seed)
    tset = load_template_set(templates)
    z = rng.uniform(*z_range, n)
    pool = np.arange(len(tset)) if template_indices is None else np.asarray(template_indices)
    kind = rng.choice(pool, n)
    ref = rng.uniform(*ref_mag_range, n)
    mags = np.empty((n, len(bands)))
    for i in range(n):
        wave = tset.waves[kind[i]] * (1 + z[i])
        flam = tset.fluxes[kind[i]] * igm_transmission(wave, z[i], model=igm)
        m = ab_magnitudes(wave, flam, bands)
        mags[i] = m - m[-1] + ref[i]
    if offsets_mag is not None:
        mags = mags + np.asarray(offsets_mag)[None, :]
    flux = 10 ** (-0.4 * (mags - AB_ZEROPOINT_NJY))
    floor = DROPOUT_FLOOR * np.median(flux, axis=1, keepdims=True)
    sigma = np.maximum(flux, floor) / snr
    obs = flux + rng.normal(size=flux.shape) * sigma
    det = obs > sigma
    with np.errstate(divide="ignore", invalid="ignore"):
        mag_obs = np.where(det, AB_ZEROPOINT_NJY - 2.5 * np.log10(obs), NONDETECTION_MAG)
        err_obs = np.where(det, 2.5 / np.log(10) * sigma / obs, AB_ZEROPOINT_NJY - 2.5 * np.log10(sigma))
    table = {
        "object_id": np.arange(n, dtype=np.int64) + 1,
        "redshift": z,
        "ebv": np.zeros(n),
        "ra": np.zeros(n),
        "dec": np.zeros(n),
        "template": kind,
    }
    for k, band in enumerate(bands):
        table[f"mag_{band}"] = mag_obs[:, k]
        table[f"magerr_{band}"] = err_obs[:, k]
    return table


def max_likelihood_redshifts(table, bands, *, templates="CWWSB4", igm="eazy", z_max=8.0, z_step=0.005):
    """The redshift of least chi^2 over single templates of the generating set (flat prior, no template error).

    The maximum-likelihood estimate with the true templates, IGM and noise: what any template fitter can at
    best recover from the photometry (the limit its accuracy is measured against).
    """
    tset = load_template_set(templates)
    zgrid = np.exp(np.arange(np.log1p(0.01), np.log1p(z_max), z_step)) - 1
    model = template_fluxes(tset, zgrid, bands, igm=igm)  # (NZ, NT, NB)
    mags = np.stack([table[f"mag_{b}"] for b in bands], axis=1)
    errs = np.stack([table[f"magerr_{b}"] for b in bands], axis=1)
    detected = np.isfinite(mags) & (mags < NONDETECTION_MAG)
    flux = np.where(detected, 10 ** (-0.4 * (mags - AB_ZEROPOINT_NJY)), 0.0)
    sigma = np.where(detected, flux * errs * np.log(10) / 2.5, 10 ** (-0.4 * (errs - AB_ZEROPOINT_NJY)))
    w = 1.0 / sigma**2
    num = np.einsum("ztb,nb->nzt", model, flux * w)
    den = np.einsum("ztb,nb->nzt", model**2, w)
    amp = np.clip(num / den, 0.0, None)
    chi2 = np.sum(flux**2 * w, axis=1)[:, None, None] - 2 * amp * num + amp**2 * den
    return zgrid[chi2.min(axis=2).argmin(axis=1)]


def outlier_stats(z_est, z_true, threshold=0.02):
    """Fraction of |dz|/(1+z) < threshold, and the NMAD scatter of dz/(1+z)."""
    dz = (np.asarray(z_est) - z_true) / (1 + z_true)
    nmad = 1.4826 * np.median(np.abs(dz - np.median(dz)))
    return float(np.mean(np.abs(dz) < threshold)), float(nmad)


def assert_worse_with_noise(stats):
    """``stats``: (fraction within the threshold, NMAD) per S/N, highest S/N first; both must degrade strictly."""
    fracs, nmads = zip(*stats)
    assert all(a < b for a, b in zip(nmads, nmads[1:])), nmads
    assert all(a > b for a, b in zip(fracs, fracs[1:])), fracs
