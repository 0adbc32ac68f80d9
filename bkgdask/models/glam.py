"""Array arithmetic (GLAM) for P-splines over grids: bin averages, score and information blocks.

The design of a tensor-product spline over a grid of bins is never formed:
every product with it is a sequence of one-axis contractions (the
generalised linear array model of Currie, Durbán & Eilers, J. R. Stat. Soc.
B 68, 259, 2006), and the information ``Σ_b ω_b j_b j_bᵀ`` contracts the
weights with the per-axis row tensors ``G_d[n] = B_d[n] ⊗ B_d[n]``.

The first axis (energy) is averaged over each bin with Gauss-Legendre
points in its coordinate, as :class:`bkgdask.models.splines.BinDesign`
does; the other axes are taken at their bin centres (the midpoint rule: a
bin much narrower than a spline segment, e.g. a 0.1° FoV pixel under 1.5°
segments, averages ``exp(spline)`` to ``1 + h² (s'' + s'²) / 24`` times its
centre value, 6e-4 weighted by counts on the H.E.S.S. DR1 off runs). The
information is then exact, block-banded by the first axis: a
block per coefficient of that axis, blocks more than ``b`` apart zero
(:mod:`bkgdask.models.blockband`).
"""

from __future__ import annotations

import numpy as np

from .splines import _to_coord, _window


def _contract(values: np.ndarray, matrices, transpose: bool = False) -> np.ndarray:
    """Contract axes 1.. of ``values`` with one matrix each (``transpose``: by their rows).

    Each contraction moves its axis to the end, so after all of them the
    axes are back in order: (P, K_1, ..., K_n) -> (P, N_1, ..., N_n), or
    the reverse with ``transpose``.
    """
    for matrix in matrices:
        values = np.tensordot(values, matrix, axes=([1], [0 if transpose else 1]))
    return values


def _coefficients_per_bin(axis, basis, edges) -> int:
    """Most basis functions any bin of an axis overlaps (whatever its quadrature points)."""
    position = (_to_coord(axis.scale, np.asarray(edges, dtype=np.float64)) - basis.lo) / basis.step
    first = np.clip(np.floor(position[:-1]), 0, basis.n_segments - 1)
    last = np.clip(np.ceil(position[1:]) - 1, 0, basis.n_segments - 1)
    return int(np.max(last - first)) + basis.degree + 1


def _contract_rows(values: np.ndarray, rows) -> np.ndarray:
    """``Σ_n values[x, n_1, ..., n_k] Π_d rows_d[n_d]``: (X, N_1, ..., N_k) -> (X, R_1 ... R_k).

    The last axis by one matrix product, the others by batched products from
    the last to the first, so that no operand is transposed in memory.
    """
    tail = rows[-1].shape[1]
    values = values.reshape(-1, values.shape[-1]) @ rows[-1]
    for d in range(len(rows) - 2, -1, -1):
        values = np.matmul(rows[d].T, values.reshape(-1, rows[d].shape[0], tail))
        tail *= rows[d].shape[1]
    return values.reshape(-1, tail)


class GridDesign:
    """Bin averages of ``exp(spline)`` over a grid, the first axis by quadrature.

    Parameters
    ----------
    axes : sequence of RateAxis
        Axes (scale and measure) of the spline, the quadrature axis first.
    bases : sequence of SplineBasis
        Per axis, the spline basis.
    edges : sequence of array-like
        Per axis, the bin edges (N_d + 1).
    n_points : int
        Gauss-Legendre points per bin of the first axis.
    """

    def __init__(self, axes, bases, edges, n_points: int):
        u, self.weight = axes[0].quadrature(edges[0], n_points)
        basis = bases[0].matrix(u)
        self.first, self.window = _window(basis)
        self.basis = basis.reshape(-1, bases[0].n_coef)
        centres = [a.quadrature(e, 1)[0][:, 0] for a, e in zip(axes[1:], edges[1:])]
        self.others = [b.matrix(c) for b, c in zip(bases[1:], centres)]
        self.shape = (u.shape[0], *(m.shape[0] for m in self.others))
        self.n_coef = tuple(b.n_coef for b in bases)
        self.n_band = max(_coefficients_per_bin(axes[0], bases[0], edges[0]), 3)
        self.rows = [np.einsum("na,nb->nab", m, m).reshape(m.shape[0], -1) for m in self.others]
        self._buffers: dict[str, np.ndarray] = {}

    def weighted_rate(self, coef: np.ndarray) -> np.ndarray:
        """Rate x quadrature weight at every point, (N_0, Q, N_1, ..., N_n)."""
        log_rate = self.basis @ np.reshape(coef, (self.n_coef[0], -1))
        log_rate = _contract(log_rate.reshape(-1, *self.n_coef[1:]), self.others)
        with np.errstate(over="ignore"):
            rate = np.exp(log_rate.reshape(self.shape[0], -1, *self.shape[1:]))
        return rate * self.weight.reshape(self.weight.shape + (1,) * (len(self.shape) - 1))

    def mean(self, coef: np.ndarray, weighted=None) -> np.ndarray:
        """Bin averages of the rate, (N_0, ..., N_n)."""
        weighted = self.weighted_rate(coef) if weighted is None else weighted
        return weighted.sum(axis=1)

    def transpose(self, weighted: np.ndarray, per_bin: np.ndarray) -> np.ndarray:
        """``Jᵀ v``: the bin averages' derivatives by the coefficients, summed with ``per_bin``.

        Parameters
        ----------
        weighted : numpy.ndarray
            :meth:`weighted_rate` at the coefficients.
        per_bin : numpy.ndarray
            One value per bin, (N_0, ..., N_n).

        Returns
        -------
        numpy.ndarray
            Flattened over the coefficients, (K,).
        """
        values = (weighted * per_bin[:, None]).reshape(-1, *self.shape[1:])
        values = _contract(values, self.others, transpose=True)
        return (self.basis.T @ values.reshape(values.shape[0], -1)).ravel()

    def gram(self, weighted: np.ndarray, per_bin: np.ndarray) -> np.ndarray:
        """``Σ_b ω_b j_b j_bᵀ`` with ``j_b`` the derivatives of bin ``b``'s average, as a band.

        The products of the rates at two quadrature points of a bin are
        contracted with the other axes' row tensors, then combined with the
        first axis's basis values at the two points.

        Parameters
        ----------
        weighted : numpy.ndarray
            :meth:`weighted_rate` at the coefficients.
        per_bin : numpy.ndarray
            Weights ``ω_b`` of the bins, (N_0, ..., N_n).

        Returns
        -------
        numpy.ndarray
            Lower blocks (n_band, K_0, m, m), ``m`` the product of the other
            axes' coefficients (:mod:`bkgdask.models.blockband` layout).
        """
        n0, n_points, width = self.window.shape
        rate = weighted.reshape(n0, n_points, -1) * np.sqrt(per_bin).reshape(n0, 1, -1)
        q1, q2 = np.triu_indices(n_points)
        products = self._buffer("products", (n0, q1.size, rate.shape[-1]))
        for q in range(n_points):  # pairs (q, q'), q' >= q, in triu order
            start = q * n_points - q * (q - 1) // 2
            stop = start + n_points - q
            np.multiply(rate[:, q : q + 1], rate[:, q:], out=products[:, start:stop])
        spatial = _contract_rows(products.reshape(-1, *self.shape[1:]), self.rows)
        p1, p2 = np.triu_indices(width)
        window = self.window
        coupling = window[:, q1][:, :, p1] * window[:, q2][:, :, p2]
        coupling += (q1 != q2)[:, None] * window[:, q2][:, :, p1] * window[:, q1][:, :, p2]
        blocks = self._buffer("blocks", (n0, p1.size, spatial.shape[-1]))
        np.matmul(coupling.transpose(0, 2, 1), spatial.reshape(n0, q1.size, -1), out=blocks)
        return self._band(blocks, p1, p2)

    def _band(self, blocks: np.ndarray, p1, p2) -> np.ndarray:
        """The band of the blocks of every first-axis bin and pair ``(p1, p2)`` of its window."""
        starts = np.flatnonzero(np.diff(self.first, prepend=-1) > 0)
        if starts.size < blocks.shape[0]:  # bins sharing their first coefficient
            blocks = np.add.reduceat(blocks, starts, axis=0)
        first = self.first[starts]  # increasing: no index repeats within one addition
        rows = slice(first[0], first[-1] + 1) if np.all(np.diff(first) == 1) else first
        band = self._buffer("band", (self.n_band, self.n_coef[0], blocks.shape[-1]))
        band.fill(0.0)
        for index, (p, q) in enumerate(zip(p1, p2)):
            if isinstance(rows, slice):
                band[q - p, rows.start + p : rows.stop + p] += blocks[:, index]
            else:
                band[q - p, rows + p] += blocks[:, index]
        k = self.n_coef[1:]
        square = [n for n in k for _ in (0, 1)]  # (K_1, K_1, K_2, K_2, ...) -> (K_1, K_2, ..)²
        order = [*range(2, 2 + 2 * len(k), 2), *range(3, 3 + 2 * len(k), 2)]
        m = int(np.prod(k))
        band = band.reshape(*band.shape[:2], *square).transpose(0, 1, *order).copy()
        return band.reshape(*band.shape[:2], m, m)

    def _buffer(self, name: str, shape) -> np.ndarray:
        """A scratch array kept between calls (fresh pages cost as much as the arithmetic)."""
        if name not in self._buffers or self._buffers[name].shape != shape:
            self._buffers[name] = np.empty(shape)
        return self._buffers[name]
