"""Synthetic photo-z of several methods on the same objects, for the consensus tests."""

import numpy as np
import qp

from rail.deepdisc.constants import redshift_grid

#: The package's photo-z grid, the consensus grid of every test.
ZGRID = redshift_grid()


def gaussian_ensemble(means, sigmas, ids=None):
    """One Gaussian per object as a qp mixmod ensemble (``object_id`` ancil when ``ids`` is given)."""
    means = np.asarray(means, float)[:, None]
    sigmas = np.broadcast_to(np.asarray(sigmas, float), means.shape[:1])[:, None]
    ens = qp.Ensemble(qp.mixmod, data=dict(means=means, stds=sigmas, weights=np.ones_like(means)))
    if ids is not None:
        ens.set_ancil(dict(object_id=np.asarray(ids, np.int64)))
    return ens


def grid_ensemble(pdfs, ids=None, zgrid=None):
    """Grid PDFs as a qp interp ensemble on the package grid."""
    zgrid = redshift_grid() if zgrid is None else zgrid
    ens = qp.Ensemble(qp.interp, data=dict(xvals=zgrid, yvals=np.asarray(pdfs, float)))
    if ids is not None:
        ens.set_ancil(dict(object_id=np.asarray(ids, np.int64)))
    return ens


def gaussian_rows(zgrid, means, sigmas):
    """Normalised Gaussians tabulated on ``zgrid``, one row per object."""
    x = (zgrid[None, :] - np.asarray(means, float)[:, None]) / np.asarray(sigmas, float)[:, None]
    rows = np.exp(-0.5 * x * x)
    return rows / np.trapezoid(rows, zgrid, axis=1)[:, None]


def two_methods(n=2000, *, seed=0, bad_fraction=0.2, overconfidence=1.0, label_fraction=0.5):
    """An honest method A and a method B that is sharp, over-confident by ``overconfidence`` and confidently
    wrong (a narrow peak far from the truth) on a ``bad_fraction`` of the objects.

    Returns
    -------
    dict
        ``ztrue``, ``labels`` (truth on a random ``label_fraction``, else NaN), ``mag``, ``ids``, ``bad`` (B's
        wrong objects), ``A`` and ``B`` (qp mixmod ensembles), ``sigma_a``, ``sigma_b`` (true scatter).
    """
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.3, 6.0, n)
    ids = np.arange(1000, 1000 + n)
    sigma_a = 0.06 * (1 + z)
    sigma_b = 0.03 * (1 + z)
    mean_a = z + rng.normal(0, 1, n) * sigma_a
    mean_b = z + rng.normal(0, 1, n) * sigma_b
    bad = rng.uniform(size=n) < bad_fraction
    shift = rng.choice([-1.0, 1.0], n) * rng.uniform(1.0, 2.5, n)
    wrong = z + shift
    wrong = np.where((wrong < 0.1) | (wrong > 11.0), z - shift, wrong)
    mean_b = np.where(bad, wrong, mean_b)
    labels = np.where(rng.uniform(size=n) < label_fraction, z, np.nan)
    return {"ztrue": z, "labels": labels, "mag": rng.uniform(23.0, 29.0, n), "ids": ids, "bad": bad,
            "A": gaussian_ensemble(mean_a, sigma_a, ids), "B": gaussian_ensemble(mean_b, sigma_b / overconfidence, ids),
            "sigma_a": sigma_a, "sigma_b": sigma_b}


def check_output(ens, ids):
    """A consensus ensemble: one normalised row per object, in order, with point estimates and flags."""
    assert ens.npdf == len(ids)
    np.testing.assert_array_equal(np.asarray(ens.ancil["object_id"]).ravel(), ids)
    for col in ("zmode", "zmean", "zmedian", "detected"):
        assert col in ens.ancil
    yvals = ens.objdata["yvals"]
    np.testing.assert_allclose(np.trapezoid(yvals, ZGRID, axis=1), 1.0, rtol=1e-6)
