"""A known-truth background rate R(E, offset, zenith): the simulator's model.

The rate, in s-1 MeV-1 sr-1, of reconstructed energy ``E`` (TeV), FoV offset
``θ`` and pointing zenith ``z``::

    R = N0 · cos(z)^(-zenith_index) · (E / 1 TeV)^(-index)
          · 1 / (1 + (E_th(z) / E)^sharpness)                 # zenith-dependent threshold
          · exp(-(1 - cos θ) / s(E))                           # FoV falloff
    E_th(z) = threshold · cos(z)^(-threshold_zenith_index)
    s(E)    = (1 - cos σ0) · (E / 1 TeV)^(-width_index)        # narrows with energy

for ``E`` in ``[energy_min, energy_max]`` and ``θ <= offset_max``, zero outside.
With ``u = 1 - cos θ`` the solid angle is ``dΩ = 2π du``, so the offset
integral of a ring is analytic, ``2π s (e^(-u_lo/s) - e^(-u_hi/s))``, and the
offset of an event is drawn exactly from a truncated exponential in ``u``.
Energies are drawn exactly by rejection from a power law. Only the energy
integral of :meth:`TruthModel.expected_counts` is numerical (Gauss-Legendre
in log E, relative error < 1e-9).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from ..models.binning import TEV_TO_MEV

TRUTH_FILE = "truth.yaml"
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(24)
_MAX_STEP = 0.05  # widest ln(E) interval integrated by one Gauss-Legendre rule


class TruthModel(BaseModel):
    """Parameters of the analytic background rate (units in the field names' docs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    norm: float = Field(2.5e-4, gt=0, description="s-1 MeV-1 sr-1 at 1 TeV, zenith 0, centre")
    index: float = Field(2.7, gt=1, description="spectral index")
    zenith_index: float = Field(1.0, description="norm scales as cos(z)^-zenith_index")
    threshold: float = Field(0.25, gt=0, description="TeV, threshold energy at zenith 0")
    threshold_zenith_index: float = Field(2.5, ge=0, description="E_th scales as cos(z)^-this")
    sharpness: float = Field(4.0, gt=0, description="steepness of the threshold roll-off")
    width: float = Field(1.4, gt=0, description="deg, FoV falloff width σ0 at 1 TeV")
    width_index: float = Field(0.15, ge=0, description="s(E) scales as E^-width_index")
    energy_min: float = Field(0.05, gt=0, description="TeV, lowest simulated energy")
    energy_max: float = Field(300.0, gt=0, description="TeV, highest simulated energy")
    offset_max: float = Field(4.0, gt=0, le=90, description="deg, largest simulated offset")

    # -- the rate ---------------------------------------------------------
    def _scale(self, energy_tev):
        """s(E), dimensionless (units of u = 1 - cos θ)."""
        s0 = 1.0 - np.cos(np.deg2rad(self.width))
        return s0 * np.power(energy_tev, -self.width_index)

    def _threshold(self, energy_tev, zenith_deg):
        """Threshold roll-off in [0, 1] (broadcasts)."""
        cos_z = np.cos(np.deg2rad(zenith_deg))
        e_th = self.threshold * np.power(cos_z, -self.threshold_zenith_index)
        return 1.0 / (1.0 + np.power(e_th / energy_tev, self.sharpness))

    def _spectrum(self, energy_tev, zenith_deg):
        """Rate at the FoV centre, s-1 MeV-1 sr-1 (broadcasts)."""
        norm = self.norm * np.power(np.cos(np.deg2rad(zenith_deg)), -self.zenith_index)
        inside = (energy_tev >= self.energy_min) & (energy_tev <= self.energy_max)
        spectrum = (
            norm * np.power(energy_tev, -self.index) * self._threshold(energy_tev, zenith_deg)
        )
        return np.where(inside, spectrum, 0.0)

    @property
    def u_max(self) -> float:
        return 1.0 - np.cos(np.deg2rad(self.offset_max))

    def rate(self, energy_tev, offset_deg, zenith_deg):
        """R(E, θ, z), s-1 MeV-1 sr-1 (broadcasts)."""
        u = 1.0 - np.cos(np.deg2rad(offset_deg))
        profile = np.where(u <= self.u_max, np.exp(-u / self._scale(energy_tev)), 0.0)
        return self._spectrum(energy_tev, zenith_deg) * profile

    # -- integrals --------------------------------------------------------
    def _ring_integral(self, energy_tev, offset_edges_deg):
        """∫ profile dΩ over each ring, sr; shape (..., n_rings)."""
        u = np.minimum(1.0 - np.cos(np.deg2rad(np.asarray(offset_edges_deg))), self.u_max)
        s = self._scale(energy_tev)[..., None]
        return 2 * np.pi * s * (np.exp(-u[:-1] / s) - np.exp(-u[1:] / s))

    def _energy_nodes(self, energy_edges_tev):
        """Quadrature nodes (TeV) and weights (MeV) per energy bin, cut at the simulated range."""
        nodes, weights, owner = [], [], []
        for i, (lo, hi) in enumerate(itertools.pairwise(energy_edges_tev)):
            lo, hi = max(lo, self.energy_min), min(hi, self.energy_max)
            if hi <= lo:
                continue
            steps = int(np.ceil(np.log(hi / lo) / _MAX_STEP))
            ln_edges = np.linspace(np.log(lo), np.log(hi), steps + 1)
            half = 0.5 * np.diff(ln_edges)
            ln_e = (0.5 * (ln_edges[:-1] + ln_edges[1:]))[:, None] + half[:, None] * _NODES
            energy = np.exp(ln_e).ravel()
            nodes.append(energy)
            weights.append((half[:, None] * _WEIGHTS).ravel() * energy * TEV_TO_MEV)
            owner.append(np.full(energy.size, i))
        return np.concatenate(nodes), np.concatenate(weights), np.concatenate(owner)

    def expected_counts(self, energy_edges_tev, offset_edges_deg, zenith_deg, time_s) -> np.ndarray:
        """Expected counts in every (energy, offset) bin, summed over runs.

        Parameters
        ----------
        energy_edges_tev : array-like
            Reconstructed-energy bin edges, TeV.
        offset_edges_deg : array-like
            Offset bin edges, deg.
        zenith_deg, time_s : float or array-like
            Zenith (deg) and observation time (s) of each run.

        Returns
        -------
        numpy.ndarray
            Shape (n_energy, n_offset).
        """
        energy_edges = np.asarray(energy_edges_tev, dtype=np.float64)
        zenith = np.atleast_1d(np.asarray(zenith_deg, dtype=np.float64))
        time = np.broadcast_to(np.asarray(time_s, dtype=np.float64), zenith.shape)
        energy, weight, owner = self._energy_nodes(energy_edges)
        # Σ_runs t_i · spectrum(E, z_i) at each node: (nodes,)
        spectrum = (time[:, None] * self._spectrum(energy[None, :], zenith[:, None])).sum(axis=0)
        rings = self._ring_integral(energy, offset_edges_deg)  # (nodes, rings)
        per_node = (spectrum * weight)[:, None] * rings
        out = np.zeros((energy_edges.size - 1, rings.shape[1]))
        np.add.at(out, owner, per_node)
        return out

    def total_rate(self, zenith_deg: float) -> float:
        """Events per second of observation time over the whole simulated range."""
        edges = np.array([self.energy_min, self.energy_max])
        return float(self.expected_counts(edges, [0.0, self.offset_max], zenith_deg, 1.0).sum())

    # -- sampling ---------------------------------------------------------
    def sample(self, rng: np.random.Generator, zenith_deg: float, time_s: float):
        """Draw one run's events: Poisson number, energies (TeV) and offsets (deg)."""
        n = rng.poisson(self.total_rate(zenith_deg) * time_s)
        energy = self._sample_energy(rng, zenith_deg, n)
        s = self._scale(energy)
        tail = -np.expm1(-self.u_max / s)
        u = -s * np.log1p(-rng.uniform(size=n) * tail)
        offset = np.rad2deg(2.0 * np.arcsin(np.sqrt(u / 2.0)))  # 1 - cos θ = 2 sin²(θ/2)
        return energy, offset

    def _sample_energy(self, rng, zenith_deg, n):
        """Rejection from a power law E^-index: accept ∝ threshold · ∫profile dΩ."""
        lo, hi, g = self.energy_min, self.energy_max, 1.0 - self.index
        s_lo = self._scale(np.array(lo))
        accept_max = s_lo * -np.expm1(-self.u_max / s_lo)  # ∫profile dΩ is largest at lo
        out, have = np.empty(n), 0
        while have < n:
            batch = max(4096, 16 * (n - have))
            energy = (lo**g + rng.uniform(size=batch) * (hi**g - lo**g)) ** (1.0 / g)
            s = self._scale(energy)
            p = self._threshold(energy, zenith_deg) * s * -np.expm1(-self.u_max / s) / accept_max
            keep = energy[rng.uniform(size=batch) < p][: n - have]
            out[have : have + keep.size] = keep
            have += keep.size
        return out

    # -- files ------------------------------------------------------------
    def write(self, path: str | Path) -> Path:
        """Write the parameters (YAML) with a note of where the model lives."""
        path = Path(path)
        doc = {
            "model": "bkgdask.sim.truth.TruthModel",
            "units": "s-1 MeV-1 sr-1",
            **self.model_dump(),
        }
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    @classmethod
    def read(cls, path: str | Path) -> TruthModel:
        doc = yaml.safe_load(Path(path).read_text())
        doc.pop("model", None)
        doc.pop("units", None)
        return cls(**doc)
