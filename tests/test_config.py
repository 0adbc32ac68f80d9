"""Configuration: defaults are the tutorial's, unknown keys and bad units are rejected."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from bkgdask.cli import cli
from bkgdask.config import BuildConfig
from bkgdask.errors import BkgdaskError
from bkgdask.quantities import AxisEdges


def test_defaults_are_the_tutorials():
    config = BuildConfig()
    binning = config.binning_of_kind()
    np.testing.assert_array_equal(binning["energy"], np.logspace(-1, 2, 20))
    np.testing.assert_array_equal(binning["offset"], np.sqrt(np.linspace(0, 9, 10)))
    np.testing.assert_array_equal(config.grouping.zenith.to_values("deg"), [0, 20, 40, 90])
    assert config.compute.scheduler == "auto"
    assert config.compute.dashboard_address.startswith("127.0.0.1:")


def test_config_command_round_trips(tmp_path):
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 0
    assert BuildConfig.from_yaml(result.output) == BuildConfig()
    out = tmp_path / "c.yaml"
    assert CliRunner().invoke(cli, ["config", "-o", str(out)]).exit_code == 0
    assert BuildConfig.read(out) == BuildConfig()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("binning:\n  energie: {edges: [1, 10], unit: TeV}\n", "energie"),
        ("colour: red\n", "colour"),
        ("binning:\n  energy: {edges: [1, 10], unit: deg}\n", "energy"),
        ("binning:\n  energy: {min: 0.1, max: 100 TeV, nbin: 3}\n", "unit"),
        ("binning:\n  offset: {edges: [0, 2, 1], unit: deg}\n", "increasing"),
        ("grouping:\n  zenith: {edges: [0, 20], unit: TeV}\n", "zenith"),
        ("compute:\n  scheduler: carrier-pigeon\n", "scheduler"),
        ("compute:\n  split_every: 1\n", "split_every"),
        ("binning: [1, 2]\n", "binning"),
        ("binning: {energy: {edges: [1, 10]}}\n", "unit"),
        ("a: [unclosed\n", "YAML"),
        ("binning:\n  energy: {min: 0.1 TeVV, max: 100 TeV, nbin: 3}\n", "unknown unit 'TeVV'"),
        ("grouping:\n  min_time: 2 deg\n", "cannot convert deg \\(angle\\) to s \\(time\\)"),
        ("exclusion:\n  target_radius: 0.4\n", "string with a unit"),
        ("exclusion:\n  target_radius: '0.4'\n", "give a unit"),
    ],
)
def test_bad_configs_rejected(text, needle):
    with pytest.raises(BkgdaskError, match=needle):
        BuildConfig.from_yaml(text)


def test_units_convert():
    config = BuildConfig.from_yaml(
        "binning:\n"
        "  energy: {min: 100 GeV, max: 100000 GeV, nbin: 19, spacing: log}\n"
        "  offset: {edges: [0, 1800, 3600, 10800], unit: arcsec}\n"
        "grouping:\n  zenith: {edges: [0, 0.5, 1.0], unit: rad}\n"
    )
    binning = config.binning_of_kind()
    np.testing.assert_allclose(binning["energy"], np.logspace(-1, 2, 20), rtol=1e-12)
    np.testing.assert_allclose(binning["offset"], [0, 0.5, 1, 3])
    np.testing.assert_allclose(config.grouping.zenith.to_values("deg"), np.rad2deg([0, 0.5, 1]))


def test_quantities_take_astropy_ones_and_print_as_written():
    """A Python caller may pass astropy quantities; a config prints each value in its unit."""
    import astropy.units as u

    config = BuildConfig().updated({"exclusion": {"target_radius": 30 * u.arcmin}})
    assert config.exclusion.target_radius.to_value("deg") == 0.5
    assert "target_radius: 30 arcmin" in config.to_yaml()
    minutes = BuildConfig().updated({"grouping": {"min_time": "90 min"}}).grouping.min_time
    assert minutes.to_value("h") == 1.5 and minutes.to_value("s") == 5400


def test_cli_edges_parse():
    assert AxisEdges.parse("0,20,40,90", "deg").to_values("deg").tolist() == [0, 20, 40, 90]
    np.testing.assert_allclose(AxisEdges.parse("100, 1000 GeV", "TeV").to_values("TeV"), [0.1, 1])
    with pytest.raises(ValueError, match="numbers"):
        AxisEdges.parse("a,b", "deg")


def test_overrides_replace_an_axis_whole():
    config = BuildConfig().updated({"binning": {"energy": {"edges": [1, 10], "unit": "TeV"}}})
    assert config.binning_of_kind().shape == (1, 9)


def test_quantities_keep_every_digit_through_updates():
    """A config merged with options is dumped and read again: positions must not be rounded."""
    circle = {"ra": "348.2292782878205 deg", "dec": "-29.496259183681715 deg", "radius": "0.4 deg"}
    config = BuildConfig().updated({"exclusion": {"regions": [circle]}})
    again = config.updated({"model": {"kind": "bkg_3d"}})
    assert again.exclusion.regions[0].to_deg() == (348.2292782878205, -29.496259183681715, 0.4)
    assert "radius: 0.4 deg" in again.to_yaml() and "max: 100 TeV" in again.to_yaml()
