"""The command line: ``build``, ``simulate``, ``validate``, ``plot``, ``config``, ``cluster``.

Heavy imports (dask, gammapy, xarray) happen inside the commands, so
``bkgdask --help`` starts fast.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .errors import BkgdaskError

log = logging.getLogger("bkgdask")

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def _batch_options(command):
    """``--cluster-config`` and ``--dask-config``, shared by the commands that start clusters."""
    command = click.option(
        "--dask-config",
        "dask_config",
        default=None,
        multiple=True,
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="YAML merged into Dask's config (e.g. a jobqueue.yaml).",
    )(command)
    return click.option(
        "--cluster-config", default=None, help="jobqueue.<NAME> Dask config section."
    )(command)


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


@contextlib.contextmanager
def _user_errors():
    """Report a user's error in one line and exit 1; Ctrl-C: one line and exit 130."""
    try:
        yield
    except BkgdaskError as exc:
        _echo_err(f"Error: {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        _echo_err("bkgdask: interrupted")
        sys.exit(130)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bkgdask")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
    help="Logging level (on stderr).",
)
def cli(log_level: str) -> None:
    """Template background models for IACT DL3 data, built in parallel with Dask."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("bkgdask")
    root.handlers[:] = [handler]
    root.setLevel(log_level.upper())


def _overrides(select, zenith_edges, energy_edges, offset_edges, compute_options: dict):
    from .config import AxisEdges

    changes: dict = {}
    if select is not None:
        changes["selection"] = select
    for section, key, text, unit in (
        ("grouping", "zenith", zenith_edges, "deg"),
        ("binning", "energy", energy_edges, "TeV"),
        ("binning", "offset", offset_edges, "deg"),
    ):
        if text is not None:
            try:
                axis = AxisEdges.parse(text, unit)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint=f"--{key}-edges") from None
            changes.setdefault(section, {})[key] = axis.model_dump(mode="json", exclude_none=True)
    for key, value in compute_options.items():
        if value is not None:
            changes.setdefault("compute", {})[key] = value
    return changes


def _input_overrides(events: str | None, allow_point_like: bool | None) -> dict:
    """Config changes of ``--events`` and ``--allow-point-like`` (only those given)."""
    given = {"events": events, "allow_point_like": allow_point_like}
    return {key: value for key, value in given.items() if value is not None}


def _model_overrides(model_kind: str | None, fov_alignment: str | None, smoothing) -> dict:
    """The ``model`` section changed by ``--model``, ``--fov-alignment`` and ``--smoothing``."""
    model = {"kind": model_kind, "fov_alignment": fov_alignment, "smoothing": smoothing}
    model = {key: value.lower() for key, value in model.items() if value is not None}
    return {"model": model} if model else {}


def _exclusion_changes(config, exclude, exclude_targets, interpolate) -> dict:
    """Config changes of ``--exclude``, ``--exclude-targets`` and ``--interpolate``."""
    changes = {}
    exclusion = config.exclusion.model_dump(mode="json", exclude_none=True)
    for spec in exclude:
        exclusion["files" if Path(spec).is_file() else "regions"].append(spec)
    if exclude_targets is not None:
        exclusion["target_radius"] = exclude_targets
    if exclude or exclude_targets is not None:
        changes["exclusion"] = exclusion
    if interpolate is not None:
        changes["grouping"] = {"interpolate": interpolate}
    return changes


def _start_early(compute_options: dict, announce):
    """The backend of the command-line options alone, starting (None if they do not validate)."""
    from pydantic import ValidationError

    from .compute.backends import make_backend
    from .compute.config import ComputeConfig

    try:
        compute = ComputeConfig(**{k: v for k, v in compute_options.items() if v is not None})
    except ValidationError:
        return None  # reported with the rest of the configuration
    return make_backend(compute, announce).start()


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
    help="auto (default) | local | threads | sync | slurm | pbs | sge | htcondor | lsf"
    " | tcp://HOST:PORT.",
)
@click.option("--n-workers", type=click.IntRange(min=1), default=None, help="Local workers.")
@click.option("--split-every", type=click.IntRange(min=2), default=None, help="Reduction fan-in.")
@click.option("--retries", type=click.IntRange(min=0), default=None, help="Retries of a task.")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Batch jobs to submit.")
@click.option("--adapt", default=None, help="Adaptive batch jobs, MIN:MAX.")
@_batch_options
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
def build(
    datastore,
    output,
    select,
    zenith_edges,
    energy_edges,
    offset_edges,
    model_kind,
    fov_alignment,
    config_file,
    scheduler,
    n_workers,
    split_every,
    retries,
    jobs,
    adapt,
    cluster_config,
    dask_config,
    report,
    progress,
    events=None,
    allow_point_like=None,
    smoothing=None,
    cache=None,
    exclude=(),
    exclude_targets=None,
    interpolate=None,
):
    """Build zenith-grouped background models from DATASTORE and write one bundle."""
    from .compute.hpc import load_dask_config

    compute_options = {
        "scheduler": scheduler,
        "n_workers": n_workers,
        "split_every": split_every,
        "retries": retries,
        "jobs": jobs,
        "adapt": adapt,
        "cluster_config": cluster_config,
        "progress": progress,
        "log_directory": str(output.parent / f"{output.name}.jobs") if output else None,
    }
    backend = None
    with _user_errors():
        try:
            for path in dask_config:
                load_dask_config(path)
            # Without a config file the cluster can start before astropy and the rest of
            # bkgdask are imported: it is the slowest part of a small build.
            if config_file is None:
                backend = _start_early(compute_options, _echo_err)
            from .config import BuildConfig

            config = BuildConfig.read(config_file) if config_file else BuildConfig()
            changes = _overrides(select, zenith_edges, energy_edges, offset_edges, compute_options)
            changes.update(_input_overrides(events, allow_point_like))
            if cache is not None:
                changes["cache"] = str(cache)
            changes.update(_model_overrides(model_kind, fov_alignment, smoothing))
            config = config.updated(changes)
            config = config.updated(
                _exclusion_changes(config, exclude, exclude_targets, interpolate)
            )
            if backend is None:
                from .compute.backends import make_backend

                backend = make_backend(config.compute, _echo_err).start()
            from .engine.build import build as run_build
            from .engine.preflight import check_build_outputs
            from .io.store import DataStore

            store = DataStore.open(datastore)
            _echo_err(f"bkgdask: index {store.index_path}")
            job_logs = compute_options["log_directory"]
            check_build_outputs(store, config, output, report, job_logs)
            result = run_build(store, config, backend=backend, report=report)
            written = result.write(output)
        finally:
            if backend is not None:
                backend.close()
    s = result.summary
    _echo_err(
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


@cli.command("config")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of stdout.",
)
def config_command(output):
    """Print the default configuration as YAML."""
    from .config import BuildConfig

    text = BuildConfig().to_yaml()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)


@cli.command()
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n-obs", type=click.IntRange(min=1), required=True, help="Number of runs.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--zenith-range", default="0,60", show_default=True, help="Zenith range, deg.")
@click.option(
    "--duration",
    default="1680 s",
    show_default=True,
    help="Observation time per run (sum of GTIs), e.g. '28 min'.",
)
@click.option(
    "--n-gti", type=click.IntRange(min=1), default=1, show_default=True, help="GTIs per run."
)
@click.option(
    "--special-pointings", is_flag=True, help="First run across RA=0, second at the north pole."
)
@click.option(
    "--scheduler",
    type=click.Choice(["local", "threads", "sync"]),
    default="local",
    show_default=True,
)
@click.option("--n-workers", type=click.IntRange(min=1), default=None)
def simulate(
    outdir, n_obs, seed, zenith_range, duration, n_gti, special_pointings, scheduler, n_workers
):
    """Write a store of simulated off runs with a known background rate to OUTDIR."""
    import astropy.units as u

    from .sim.simulate import SimulationConfig, simulate_store

    try:
        zen = [float(v) for v in zenith_range.split(",")]
        seconds = u.Quantity(duration).to_value(u.s)
        if len(zen) != 2:
            raise ValueError("--zenith-range takes two numbers, e.g. 0,60")
        config = SimulationConfig(
            n_obs=n_obs,
            seed=seed,
            zenith_min=zen[0],
            zenith_max=zen[1],
            duration=seconds,
            n_gti=n_gti,
            special_pointings=special_pointings,
        )
    except (ValueError, TypeError, u.UnitsError) as exc:
        raise click.BadParameter(str(exc)) from None
    with _user_errors():
        path = simulate_store(
            outdir, config, scheduler=scheduler, n_workers=n_workers, progress=True
        )
    _echo_err(f"bkgdask: simulated {n_obs} runs -> {path}")


@cli.command()
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--store",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The data store the bundle was built from.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Report folder (PNG, report.json, report.md).",
)
@click.option("--select", default=None, help="Runs to apply the models to (default: the bundle's).")
@click.option(
    "--exclude",
    multiple=True,
    help="Exclusion region: a DS9 string like 'icrs;circle(83.63,22.01,0.3)' or a file.",
)
@click.option(
    "--truth",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Truth file (default: truth.yaml beside the store, if there).",
)
@click.option("--kfold", type=click.IntRange(min=0), default=0, help="Cross-validation folds.")
@click.option(
    "--compare-store-models",
    is_flag=True,
    help="Also apply the store's own bkg models (e.g. the official ones).",
)
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Runs given the map validation (evenly spaced).",
)
@click.option(
    "--leave-one-target-out",
    "loto",
    is_flag=True,
    help="Per target: build without its runs, fit FoV norms on them (loto.json, loto.md).",
)
@click.option(
    "--loto-config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Build config of the leave-one-target-out models (default: targets excluded 0.4 deg).",
)
def validate(
    bundle,
    store,
    output,
    select,
    exclude,
    truth,
    kfold,
    compare_store_models,
    max_runs,
    loto,
    loto_config,
):
    """Validate the models of BUNDLE: truth pulls, runs, cross-validation."""
    from .validation.regions import parse_regions
    from .validation.report import ValidationRequest, markdown, run_validation

    with _user_errors():
        request = ValidationRequest(
            bundle=bundle,
            store=store,
            outdir=output,
            selection=select,
            regions=parse_regions(exclude),
            truth=truth,
            kfold=kfold,
            compare_store_models=compare_store_models,
            max_runs=max_runs,
        )
        report = run_validation(request)
        if loto:
            from .validation.loto import write_loto

            table = write_loto(store, output, loto_config, compare_store_models)
    click.echo(markdown(report), nl=False)
    if loto:
        click.echo(table)


@cli.command()
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the PNG files.",
)
@click.option(
    "--offsets",
    default="0.25,1.25,1.75",
    show_default=True,
    help="Offsets (deg) of the rate-vs-energy curves.",
)
@click.option(
    "--energies",
    default="0.5,1,3,10",
    show_default=True,
    help="Energies (TeV) of the rate-vs-offset curves.",
)
def plot(bundle, output, offsets, energies):
    """PNG figures of every model of BUNDLE and of its run selection."""
    from .plotting import plot_bundle

    try:
        offsets_deg = [float(v) for v in offsets.split(",")]
        energies_tev = [float(v) for v in energies.split(",")]
    except ValueError:
        raise click.BadParameter("give numbers separated by commas") from None
    with _user_errors():
        paths = plot_bundle(bundle, output, offsets_deg=offsets_deg, energies_tev=energies_tev)
    _echo_err(f"bkgdask: {len(paths)} figures -> {output}")


@cli.group()
def cluster():
    """Batch clusters (dask-jobqueue)."""


@cluster.command("job-script")
@click.option(
    "--scheduler", required=True, type=click.Choice(["slurm", "pbs", "sge", "htcondor", "lsf"])
)
@_batch_options
def job_script_command(scheduler, cluster_config, dask_config):
    """Print the batch script each worker job would be submitted with."""
    from .compute.backends import backend_class
    from .compute.config import ComputeConfig
    from .compute.hpc import load_dask_config

    with _user_errors():
        for path in dask_config:
            load_dask_config(path)
        config = ComputeConfig(scheduler=scheduler, cluster_config=cluster_config)
        click.echo(backend_class(scheduler)(config).job_script())


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
