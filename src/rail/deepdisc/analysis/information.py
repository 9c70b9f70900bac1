"""A lower bound on the mutual information between features and redshift, from normalising flows.

For any conditional density q(z | f), ``I(f; z) = H(z) - H(z | f) >= H(z) - E[-log q(z | f)]`` (the
variational bound of Barber & Agakov 2003), because the cross-entropy ``E[-log q(z | f)]`` is at least
``H(z | f)``. As in Merz et al. (2025, appendix, with ``pzflow``), q is a conditional normalising flow fitted
to (reduced) features and redshifts; H(z) is estimated by an unconditional flow. Both are fitted on one part of
the objects and evaluated on the held-out rest (``holdout``), so the bound is not inflated by overfitting. The
flows are rational-quadratic neural spline flows from ``zuko`` (torch; ``pzflow``'s 1-D unconditional flow
cannot be built, and it would add jax to a torch package). Redshifts and features are standardised first (an
affine map of z shifts both entropies equally and leaves the bound unchanged).

Caveat: H(z) is itself a held-out cross-entropy (an upper estimate), so the difference is an estimate of the
bound, not a guaranteed bound; it is near zero for features independent of z (see the tests).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np

from rail.deepdisc.exceptions import ConfigError

__all__ = ["MIBound", "mutual_information_bound", "model_information_bound", "fit_flow"]

_MIN_OBJECTS = 20
_STD_FLOOR = 1e-8


@dataclass(frozen=True)
class MIBound:
    """Result of `mutual_information_bound` (nats unless stated).

    Attributes
    ----------
    bound : float
        ``h_z - conditional_nll``: the mutual-information lower bound, nats.
    bound_bits : float
        The same in bits.
    h_z : float
        Held-out cross-entropy of the unconditional flow (estimate of H(z), standardised z).
    conditional_nll : float
        Held-out ``E[-log q(z | f)]`` (standardised z).
    bound_error : float
        Standard error of the bound over the held-out objects (per-object differences).
    n_train, n_test, n_features : int
    """

    bound: float
    bound_bits: float
    h_z: float
    conditional_nll: float
    bound_error: float
    n_train: int
    n_test: int
    n_features: int

    def to_dict(self) -> dict:
        """Plain data."""
        return asdict(self)


def fit_flow(z, context=None, *, epochs: int = 400, seed: int = 0, hidden: int = 32, transforms: int = 2,
             lr: float = 2e-2, val_fraction: float = 0.2):
    """Fit a (conditional) neural spline flow to 1-D ``z`` by maximum likelihood (full batch, Adam).

    A random ``val_fraction`` of the objects is held out and the parameters of the step with the lowest
    held-out NLL are kept (early stopping: a flow conditioned on noise would otherwise overfit and bias the
    bound low).

    Parameters
    ----------
    z : ndarray (N,)
    context : ndarray (N, D), optional
        Conditioning features (None: unconditional).
    epochs, seed, hidden, transforms, lr, val_fraction
        Training and size of the flow.

    Returns
    -------
    zuko.flows.Flow
        In eval mode; call it with a context tensor (or nothing) to get the distribution.
    """
    import copy

    import torch

    try:
        import zuko
    except ImportError:
        raise ConfigError("the mutual-information bound needs zuko: pip install 'pz-rail-deepdisc[features]'") from None
    torch.manual_seed(seed)
    d = 0 if context is None else int(context.shape[1])
    flow = zuko.flows.NSF(features=1, context=d, transforms=transforms, hidden_features=(hidden, hidden))
    zt = torch.as_tensor(np.asarray(z, np.float32)).reshape(-1, 1)
    ct = None if context is None else torch.as_tensor(np.asarray(context, np.float32))
    order = torch.randperm(len(zt), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(val_fraction * len(zt))))
    val, fit = order[:n_val], order[n_val:]

    def nll(rows):
        return -(flow(ct[rows]) if ct is not None else flow()).log_prob(zt[rows]).mean()

    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    best, best_state = math.inf, copy.deepcopy(flow.state_dict())
    for _ in range(int(epochs)):
        opt.zero_grad()
        loss = nll(fit)
        loss.backward()
        opt.step()
        with torch.no_grad():
            held = float(nll(val))
        if held < best:
            best, best_state = held, copy.deepcopy(flow.state_dict())
    flow.load_state_dict(best_state)
    return flow.eval()


def _nll(flow, z, context=None) -> np.ndarray:
    import torch

    zt = torch.as_tensor(np.asarray(z, np.float32)).reshape(-1, 1)
    with torch.no_grad():
        dist = flow(torch.as_tensor(np.asarray(context, np.float32))) if context is not None else flow()
        return -dist.log_prob(zt).double().numpy()


def mutual_information_bound(features, z, *, holdout: float = 0.3, seed: int = 0, epochs: int = 400,
                             hidden: int = 32) -> MIBound:
    """Lower bound on I(features; z) (see the module docstring).

    Parameters
    ----------
    features : ndarray (N, D)
        Per-object features (reduced: a few dimensions, e.g. UMAP or PCA).
    z : ndarray (N,)
        Redshifts (non-finite rows are dropped).
    holdout : float
        Fraction of objects held out to evaluate both flows.
    seed : int
        Split and flow initialisation.
    epochs, hidden : int
        Full-batch training steps and hidden width of each flow (`fit_flow`, with early stopping).

    Returns
    -------
    MIBound

    Raises
    ------
    ConfigError
        With fewer than 20 usable objects or a holdout outside (0, 1).
    """
    f = np.asarray(features, np.float64)
    z = np.asarray(z, np.float64)
    if f.ndim != 2 or len(f) != len(z):
        raise ConfigError(f"features must be (N, D) with N = len(z) = {len(z)}, got {f.shape}")
    keep = np.isfinite(z) & np.isfinite(f).all(axis=1)
    f, z = f[keep], z[keep]
    split = _Split.make(z, holdout, seed)
    f = (f - f[split.train].mean(axis=0)) / np.maximum(f[split.train].std(axis=0), _STD_FLOOR)
    with _one_thread():
        nll_z = split.marginal_nll(epochs, seed, hidden)
        conditional = fit_flow(split.zs[split.train], f[split.train], epochs=epochs, seed=seed, hidden=hidden)
        nll_zf = _nll(conditional, split.zs[split.test], f[split.test])
    return _bound(nll_z, nll_zf, split, int(f.shape[1]))


def model_information_bound(log_density, z, *, holdout: float = 0.3, seed: int = 0, epochs: int = 400,
                            hidden: int = 32) -> MIBound:
    """Lower bound on I(head inputs; z) with the trained network's own redshift PDF as q(z | features).

    The network's mixture p(z | f) is a conditional density of z given its redshift head's inputs, so
    ``H(z) - E[-log p(z | f)]`` bounds the information those inputs carry (Barber & Agakov 2003) with no
    reduction of the features and no flow fitted to them: what the trained head itself certifies. Unlike the
    reduced-feature bound it cannot miss information the head reads; it misses what the head fails to read. The
    objects must be new to the network (another field than its training one). ``H(z)`` is the held-out
    cross-entropy of the same unconditional flow as in `mutual_information_bound` (same ``holdout`` and
    ``seed``: the same objects), and ``p`` is converted to the same standardised redshift.

    Parameters
    ----------
    log_density : ndarray (N,)
        ``log p(z_i | f_i)`` of each object's mixture at its redshift (per unit redshift).
    z : ndarray (N,)
        Redshifts (rows where either is non-finite are dropped).
    holdout, seed, epochs, hidden
        As `mutual_information_bound`.

    Returns
    -------
    MIBound
        ``n_features`` is 0 (the head's inputs are not reduced).

    Raises
    ------
    ConfigError
        With fewer than 20 usable objects, a holdout outside (0, 1) or arrays of different lengths.
    """
    log_q = np.asarray(log_density, np.float64)
    z = np.asarray(z, np.float64)
    if log_q.shape != z.shape or z.ndim != 1:
        raise ConfigError(f"log_density must be (N,) with N = len(z) = {len(z)}, got {log_q.shape}")
    keep = np.isfinite(z) & np.isfinite(log_q)
    log_q, z = log_q[keep], z[keep]
    split = _Split.make(z, holdout, seed)
    with _one_thread():
        nll_z = split.marginal_nll(epochs, seed, hidden)
    # z_s = (z - mean) / scale, so p_s(z_s) = p(z) * scale
    nll_zf = -(log_q[split.test] + math.log(split.scale))
    return _bound(nll_z, nll_zf, split, 0)


@dataclass(frozen=True)
class _Split:
    """Training and held-out objects of a bound, with the redshifts standardised on the training part."""

    zs: np.ndarray
    train: np.ndarray
    test: np.ndarray
    scale: float

    @classmethod
    def make(cls, z: np.ndarray, holdout: float, seed: int) -> _Split:
        if len(z) < _MIN_OBJECTS:
            raise ConfigError(f"the mutual-information bound needs >= {_MIN_OBJECTS} objects with finite redshift, "
                              f"got {len(z)}")
        if not 0.0 < holdout < 1.0:
            raise ConfigError(f"holdout must be in (0, 1), got {holdout!r}")
        order = np.random.default_rng(seed).permutation(len(z))
        n_test = max(1, int(round(holdout * len(z))))
        test, train = order[:n_test], order[n_test:]
        scale = max(float(z[train].std()), _STD_FLOOR)
        return cls((z - z[train].mean()) / scale, train, test, scale)

    def marginal_nll(self, epochs: int, seed: int, hidden: int) -> np.ndarray:
        """Held-out ``-log q(z)`` of the unconditional flow (the H(z) estimate), per test object."""
        return _nll(fit_flow(self.zs[self.train], epochs=epochs, seed=seed, hidden=hidden), self.zs[self.test])


@contextmanager
def _one_thread():
    """Networks this small run fastest on one thread (and do not fight for shared cores); enable gradients."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            yield
    finally:
        torch.set_num_threads(threads)


def _bound(nll_z: np.ndarray, nll_zf: np.ndarray, split: _Split, n_features: int) -> MIBound:
    diff = nll_z - nll_zf
    bound = float(diff.mean())
    return MIBound(
        bound=bound, bound_bits=bound / math.log(2.0), h_z=float(nll_z.mean()), conditional_nll=float(nll_zf.mean()),
        bound_error=float(diff.std(ddof=1) / math.sqrt(len(diff))), n_train=len(split.train), n_test=len(split.test),
        n_features=n_features,
    )
