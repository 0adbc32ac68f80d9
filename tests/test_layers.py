"""The package's layers: imports point down only, and a new model kind needs no package change."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from helpers import random_run

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.io.fitswrite import BinTable
from bkgdask.models import KINDS, Model, ModelKind, read_models, register
from bkgdask.models.binning import Binning
from bkgdask.sim.store_writer import write_store

PACKAGE = Path(bkgdask.__file__).parent

#: Layers from the bottom up; a module may import its own layer and those below.
LAYERS = [
    {"errors"},
    {"io"},
    {"models"},
    {"compute"},
    {"quantities"},
    {"config"},
    {"engine"},
    {"sim"},
    {"plotting"},
    {"validation"},
    {"cli", "__init__"},
]


def layer_of(module: str) -> int:
    """Layer index of a dotted module name inside the package (``bkgdask.io.store`` -> 1)."""
    top = module.split(".")[1] if "." in module else "__init__"
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def module_name(path: Path) -> str:
    return "bkgdask." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def imports_of(path: Path, module: str | None = None) -> set[str]:
    """Package modules imported anywhere in a file (module level or inside functions)."""
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("bkgdask"):
                found.add(name)
                found.update(f"{name}.{a.name}" for a in node.names if name == "bkgdask")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("bkgdask"))
    return {n for n in found if n != "bkgdask.__version__"}


def upward_imports(path: Path, module: str | None = None) -> list[str]:
    module = module or module_name(path)
    return [
        f"{module} imports {imported}"
        for imported in sorted(imports_of(path, module))
        if imported not in ("bkgdask", "bkgdask.__init__") and layer_of(imported) > layer_of(module)
    ]


def test_imports_point_down_only():
    violations = [v for path in sorted(PACKAGE.rglob("*.py")) for v in upward_imports(path)]
    assert not violations, "\n".join(violations)


def test_the_layer_check_catches_an_upward_import(tmp_path):
    source = tmp_path / "store.py"
    source.write_text("def f():\n    from ..engine.tasks import histogram_run\n")
    assert upward_imports(source, "bkgdask.io.store") == [
        "bkgdask.io.store imports bkgdask.engine.tasks"
    ]


def test_every_layer_has_a_one_line_docstring():
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc and "\n" not in doc.strip(), folder.name


class EnergyOnly(ModelKind):
    """A toy kind: rate over energy only, averaged over the field of view within 3 deg."""

    tag = "energy_only_test"
    hdu_class = "BKG_1D_TEST"
    dims = ("energy",)
    image_dims = ("energy", "energy")
    radius_deg = 3.0

    def binning(self, config) -> Binning:
        return Binning.of(energy=config.energy.to_values("TeV"))

    def solid_angles_sr(self, binning):
        return 2 * np.pi * (1 - np.cos(np.radians(self.radius_deg)))

    def count(self, events, binning, compiled):
        from bkgdask.models.kernel2d import separation_deg

        inside = separation_deg(events.ra_pnt, events.dec_pnt, events.ra, events.dec)
        energy = events.energy[inside < self.radius_deg]
        return np.histogram(energy, binning["energy"])[0].astype(np.int64)

    def to_hdu(self, total, rate):
        edges = np.append(total["energy_lo"].values, total["energy_hi"].values[-1])
        columns = {"ENERG_LO": edges[:-1], "ENERG_HI": edges[1:], "BKG": rate}
        return BinTable(columns=columns, header={"HDUCLAS2": "BKG", "HDUCLAS4": self.hdu_class})

    def from_hdu(self, name, header, data):
        edges = np.append(data["ENERG_LO"], data["ENERG_HI"][-1])
        return Model(name, self, Binning.of(energy=edges), np.asarray(data["BKG"]), dict(header))


@pytest.fixture
def energy_only():
    kind = register(EnergyOnly())
    yield kind
    del KINDS[kind.tag]


def test_a_toy_kind_builds_reduces_and_writes(tmp_path, energy_only):
    runs = [random_run(obs_id, 83.6, 22.0, 3000, seed=obs_id)[0] for obs_id in (1, 2, 3)]
    store = write_store(tmp_path / "store", runs)
    config = BuildConfig().updated(
        {"model": {"kind": energy_only.tag}, "compute": {"scheduler": "sync", "progress": False}}
    )
    result = bkgdask.build(store, config)
    (total,) = result.totals.values()
    assert total["counts"].dims == ("energy",)
    expected = sum(energy_only.count(_events(run), config.binning_of_kind(), None) for run in runs)
    np.testing.assert_array_equal(total["counts"].values, expected)
    models, _ = read_models(result.write(tmp_path / "bkg.fits"))
    (model,) = models.values()
    assert model.kind is energy_only and sorted(model.obs_ids) == [1, 2, 3]
    exposure = energy_only.exposure(model.binning, total.attrs["observation_time"])
    np.testing.assert_allclose(model.rate, expected / exposure, rtol=1e-12)


def _events(run):
    from bkgdask.io.runs import RunEvents

    energy = np.asarray(run.energy, np.float32).astype(np.float64)
    ra = np.asarray(run.ra, np.float32).astype(np.float64)
    dec = np.asarray(run.dec, np.float32).astype(np.float64)
    return RunEvents(run.obs_id, energy, ra, dec, run.ra_pnt, run.dec_pnt, 1.0, {})
