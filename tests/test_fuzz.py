"""Fuzzing one run file: a bit flip or a truncation never gives a build that differs silently."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import small_store

from bkgdask.config import BuildConfig
from bkgdask.engine.build import build
from bkgdask.errors import BkgdaskError

QUICK_CASES = 24
FULL_CASES = 300


@pytest.fixture(scope="module")
def fuzz_setup(tmp_path_factory):
    """A small store, the sync config and the clean build's counts per model."""
    store = small_store(tmp_path_factory.mktemp("fuzz") / "store", n=200)
    config = BuildConfig().updated({"compute": {"scheduler": "sync", "progress": False}})
    clean = build(store, config)
    victim = store / "data" / "run_000101.fits.gz"
    return store, config, _counts(clean), victim, victim.read_bytes()


def _counts(result) -> dict[str, tuple]:
    return {
        label: (total["counts"].values.tobytes(), total["exposure"].values.tobytes())
        for label, total in result.totals.items()
    }


def _damaged(original: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(original)
    if rng.uniform() < 0.7:
        position = int(rng.integers(len(data)))
        data[position] ^= 1 << int(rng.integers(8))
        return bytes(data)
    return bytes(data[: int(rng.integers(len(data)))])


def _fuzz(fuzz_setup, seeds) -> dict[str, int]:
    store, config, clean, victim, original = fuzz_setup
    outcomes = {"error": 0, "same": 0}
    try:
        for seed in seeds:
            victim.write_bytes(_damaged(original, np.random.default_rng(seed)))
            try:
                result = build(store, config)
            except BkgdaskError as exc:
                assert "\n" not in str(exc), f"seed {seed}: message on several lines"
                outcomes["error"] += 1
                continue
            assert _counts(result) == clean, f"seed {seed}: damaged file built a different model"
            outcomes["same"] += 1
    finally:
        victim.write_bytes(original)
    return outcomes


def test_fuzz_quick(fuzz_setup):
    outcomes = _fuzz(fuzz_setup, range(QUICK_CASES))
    assert outcomes["error"] > 0


@pytest.mark.slow
def test_fuzz_full(fuzz_setup):
    outcomes = _fuzz(fuzz_setup, range(QUICK_CASES, QUICK_CASES + FULL_CASES))
    assert outcomes["error"] > 0
