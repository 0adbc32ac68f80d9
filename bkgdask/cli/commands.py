"""The commands besides ``build``: ``config``, ``simulate``, ``validate``, ``plot``, ``cluster``."""

from __future__ import annotations

from pathlib import Path

import click

from . import batch_options, cli, echo_err, user_errors


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
    from ..config import BuildConfig

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
    from ..quantities import Quantity
    from ..sim.simulate import SimulationConfig, simulate_store

    try:
        zen = [float(v) for v in zenith_range.split(",")]
        seconds = Quantity.parse(duration).to_value("s")
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
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc)) from None
    with user_errors():
        path = simulate_store(
            outdir, config, scheduler=scheduler, n_workers=n_workers, progress=True
        )
    echo_err(f"bkgdask: simulated {n_obs} runs -> {path}")


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
    from ..validation.regions import parse_regions
    from ..validation.report import ValidationRequest, markdown, run_validation

    with user_errors():
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
            from ..validation.loto import write_loto

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
    help="Offsets (deg) of the rate-vs-energy curves (BKG_2D).",
)
@click.option(
    "--energies",
    default="0.5,1,3,10",
    show_default=True,
    help="Energies (TeV) of the rate-vs-offset curves (BKG_2D), of the FoV images (BKG_3D).",
)
def plot(bundle, output, offsets, energies):
    """PNG figures of every model of BUNDLE and of its run selection."""
    from ..plotting import plot_bundle

    try:
        offsets_deg = [float(v) for v in offsets.split(",")]
        energies_tev = [float(v) for v in energies.split(",")]
    except ValueError:
        raise click.BadParameter("give numbers separated by commas") from None
    with user_errors():
        paths = plot_bundle(bundle, output, offsets_deg=offsets_deg, energies_tev=energies_tev)
    echo_err(f"bkgdask: {len(paths)} figures -> {output}")


@cli.group()
def cluster():
    """Batch clusters (dask-jobqueue)."""


@cluster.command("job-script")
@click.option(
    "--scheduler", required=True, type=click.Choice(["slurm", "pbs", "sge", "htcondor", "lsf"])
)
@batch_options
def job_script_command(scheduler, cluster_config, dask_config):
    """Print the batch script each worker job would be submitted with."""
    from ..compute.backends import backend_class
    from ..compute.config import ComputeConfig
    from ..compute.hpc import load_dask_config

    with user_errors():
        for path in dask_config:
            load_dask_config(path)
        config = ComputeConfig(scheduler=scheduler, cluster_config=cluster_config)
        click.echo(backend_class(scheduler)(config).job_script())
