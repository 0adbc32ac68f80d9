"""``bkgdask build``: options to a configuration, the backend started early, the bundle written."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from . import batch_options, cli, echo_err, imports_done, user_errors

log = logging.getLogger("bkgdask")


@cli.command()
@click.argument("datastore", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Bundle to write (FITS; .gz compresses).",
)
@click.option("--select", default=None, help="Run selection, e.g. \"TARGET_NAME == 'Off data'\".")
@click.option("--events", default=None, help='Event filter on EVENTS columns, e.g. "MC_ID == 1".')
@click.option(
    "--allow-point-like",
    is_flag=True,
    default=None,
    help="Build from point-like stores too (models labelled POINT-LIKE).",
)
@click.option("--zenith-edges", default=None, help="Zenith group edges, e.g. 0,20,40,90 (deg).")
@click.option("--energy-edges", default=None, help="Energy edges, e.g. '0.1,1,10,100 TeV'.")
@click.option("--offset-edges", default=None, help="Offset edges, e.g. '0,1,2,3 deg'.")
@click.option("--model", "model_kind", default=None, help="Model kind: bkg_2d | bkg_3d.")
@click.option(
    "--fov-alignment",
    type=click.Choice(["radec", "altaz"], case_sensitive=False),
    default=None,
    help="bkg_3d: FoV frame aligned with RA/Dec or with Alt/Az.",
)
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML config (see 'bkgdask config'); options override it.",
)
@click.option(
    "--scheduler",
    default=None,
    help="auto (default) | local | processes | threads | sync | slurm | pbs | sge | htcondor | lsf"
    " | tcp://HOST:PORT.",
)
@click.option("--n-workers", type=click.IntRange(min=1), default=None, help="Local workers.")
@click.option("--split-every", type=click.IntRange(min=2), default=None, help="Reduction fan-in.")
@click.option("--retries", type=click.IntRange(min=0), default=None, help="Retries of a task.")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Batch jobs to submit.")
@click.option("--adapt", default=None, help="Adaptive batch jobs, MIN:MAX.")
@batch_options
@click.option(
    "--report",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a Dask performance report (HTML, works offline).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr.")
@click.option(
    "--smoothing",
    type=click.Choice(["pspline", "none"]),
    default=None,
    help="pspline: smooth positive rate (default); none: counts / exposure per bin.",
)
@click.option(
    "--cache",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of per-run partials: a rerun reads only the runs not cached.",
)
@click.option(
    "--exclude",
    "exclude",
    multiple=True,
    help="Exclusion region: DS9 string ('icrs;circle(83.63,22.01,0.3)') or DS9/CRTF file.",
)
@click.option(
    "--exclude-targets",
    default=None,
    help="Exclude this radius around each run's target (RA_OBJ/DEC_OBJ), e.g. '0.4 deg'.",
)
@click.option(
    "--interpolate/--no-interpolate",
    default=None,
    help="Run-wise models interpolated between the groups in cos(zenith) (and group_by columns).",
)
def build(datastore, output, config_file, dask_config, report, **options):
    """Build zenith-grouped background models from DATASTORE and write one bundle."""
    from ..compute.hpc import load_dask_config

    compute_options = {key: options.pop(key) for key in COMPUTE_OPTIONS}
    compute_options["log_directory"] = str(output.parent / f"{output.name}.jobs")
    backend = None
    with user_errors():
        try:
            for path in dask_config:
                load_dask_config(path)
            # Without a config file the cluster can start before xarray and the rest of
            # bkgdask are imported: it is the slowest part of a small build.
            if config_file is None:
                backend = _start_early(compute_options)
            config = build_config(config_file, options, compute_options)
            if backend is None:
                from ..compute.backends import make_backend

                backend = make_backend(config.compute, echo_err).start()
            result, written = _build_and_write(datastore, output, report, config, backend)
        finally:
            if backend is not None:
                backend.close()
    _summary(result, written, config)


#: Options of ``build`` that go to the ``compute`` section.
COMPUTE_OPTIONS = (
    "scheduler", "n_workers", "split_every", "retries", "jobs", "adapt", "cluster_config",
    "progress",
)  # fmt: skip

#: Options of ``build`` that set a config key as they are: option -> (section, key).
PLAIN_OPTIONS = {
    "select": (None, "selection"),
    "events": (None, "events"),
    "allow_point_like": (None, "allow_point_like"),
    "cache": (None, "cache"),
    "model_kind": ("model", "kind"),
    "fov_alignment": ("model", "fov_alignment"),
    "smoothing": ("model", "smoothing"),
    "interpolate": ("grouping", "interpolate"),
}

#: Edge options: option -> (section, key, default unit).
EDGE_OPTIONS = {
    "zenith_edges": ("grouping", "zenith", "deg"),
    "energy_edges": ("binning", "energy", "TeV"),
    "offset_edges": ("binning", "offset", "deg"),
}


def build_config(config_file, options: dict, compute_options: dict):
    """The configuration: the file (or the defaults) with the given options merged in."""
    from ..config import BuildConfig

    config = BuildConfig.read(config_file) if config_file else BuildConfig()
    changes: dict = {}
    for option, value in options.items():
        if value is None or option in ("exclude", "exclude_targets"):
            continue
        if option in EDGE_OPTIONS:
            section, key, unit = EDGE_OPTIONS[option]
            _set(changes, section, key, _edges(value, unit, option))
        else:
            section, key = PLAIN_OPTIONS[option]
            _set(changes, section, key, str(value) if isinstance(value, Path) else value)
    for key, value in compute_options.items():
        if value is not None:
            _set(changes, "compute", key, value)
    config = config.updated(changes)
    return config.updated(
        _exclusion_changes(config, options["exclude"], options["exclude_targets"])
    )


def _set(changes: dict, section: str | None, key: str, value) -> None:
    (changes.setdefault(section, {}) if section else changes)[key] = value


def _edges(text: str, unit: str, option: str) -> dict:
    from ..quantities import AxisEdges

    try:
        axis = AxisEdges.parse(text, unit)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{option.replace('_', '-')}") from None
    return axis.model_dump(mode="json", exclude_none=True)


def _exclusion_changes(config, exclude, exclude_targets) -> dict:
    """The ``exclusion`` section with ``--exclude`` regions and ``--exclude-targets`` added."""
    if not exclude and exclude_targets is None:
        return {}
    exclusion = config.exclusion.model_dump(mode="json", exclude_none=True)
    for spec in exclude:
        exclusion["files" if Path(spec).is_file() else "regions"].append(spec)
    if exclude_targets is not None:
        exclusion["target_radius"] = exclude_targets
    return {"exclusion": exclusion}


def _start_early(compute_options: dict):
    """The backend of the command-line options alone, starting (None if they do not validate)."""
    from pydantic import ValidationError

    from ..compute.backends import make_backend
    from ..compute.config import ComputeConfig

    try:
        compute = ComputeConfig(**{k: v for k, v in compute_options.items() if v is not None})
    except ValidationError:
        return None  # reported with the rest of the configuration
    return make_backend(compute, echo_err).start()


def _build_and_write(datastore, output, report, config, backend):
    """Open the store, check every output before any work, build, write the bundle."""
    from ..engine.build import build as run_build
    from ..engine.preflight import check_build_outputs
    from ..io.store import DataStore

    imports_done()  # the last of the build's imports are above
    store = DataStore.open(datastore)
    echo_err(f"bkgdask: index {store.index_path}")
    job_logs = config.compute.log_directory
    check_build_outputs(store, config, output, report, job_logs)
    result = run_build(store, config, backend=backend, report=report)
    return result, result.write(output)


def _summary(result, written, config) -> None:
    s = result.summary
    echo_err(
        f"bkgdask: {s['runs']} runs, {s['events']:,} events, {s['models']} models, "
        f"{s['seconds']:.2f} s, {s['events_per_second']:,.0f} events/s -> {written}"
        + (f" ({s['cached']} runs from the cache)" if config.cache else "")
    )
    if s["n_drop_gti"] or s["n_drop_bad"]:
        log.warning(
            "%d events outside every GTI and %d invalid events dropped "
            "(per run: OBS_INDEX columns N_DROP_GTI, N_DROP_BAD)",
            s["n_drop_gti"],
            s["n_drop_bad"],
        )
