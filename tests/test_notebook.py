"""The tutorial notebook runs from a clean checkout; its last cell checks the 3D analysis."""

from __future__ import annotations

import nbformat
import pytest
from conftest import ROOT, data_dir
from nbclient import NotebookClient

NOTEBOOK = ROOT / "notebooks" / "make_template_background.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.requires_data
def test_notebook_runs(monkeypatch):
    monkeypatch.setenv("GAMMAPY_DATA", str(data_dir()))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    text = "".join(o.get("text", "") for o in last.outputs)
    assert "used BKG_ZEN_" in text and "background norm" in text
    assert not any(
        o.output_type == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
