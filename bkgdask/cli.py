"""Command-line interface: ``bkgdask build``, ``bkgdask config``.

Heavy imports (dask, gammapy, xarray) happen inside the commands, so
``bkgdask --help`` starts fast.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from . import __version__
from .errors import BkgdaskError

log = logging.getLogger("bkgdask")

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


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


def _overrides(select, zenith_edges, energy_edges, offset_edges, scheduler, n_workers, split_every):
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
    for key, value in (
        ("scheduler", scheduler),
        ("n_workers", n_workers),
        ("split_every", split_every),
    ):
        if value is not None:
            changes.setdefault("compute", {})[key] = value
    return changes


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
@click.option("--zenith-edges", default=None, help="Zenith group edges, e.g. 0,20,40,90 (deg).")
@click.option("--energy-edges", default=None, help="Energy edges, e.g. '0.1,1,10,100 TeV'.")
@click.option("--offset-edges", default=None, help="Offset edges, e.g. '0,1,2,3 deg'.")
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML config (see 'bkgdask config'); options override it.",
)
@click.option("--scheduler", default=None, help="local | threads | sync | tcp://HOST:PORT.")
@click.option(
    "--n-workers", type=click.IntRange(min=1), default=None, help="Workers (default: cores)."
)
@click.option("--split-every", type=click.IntRange(min=2), default=None, help="Reduction fan-in.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr.")
def build(
    datastore,
    output,
    select,
    zenith_edges,
    energy_edges,
    offset_edges,
    config_file,
    scheduler,
    n_workers,
    split_every,
    progress,
):
    """Build zenith-grouped BKG_2D models from DATASTORE and write one bundle."""
    from .config import BuildConfig
    from .pipeline import build as run_build

    try:
        config = BuildConfig.read(config_file) if config_file else BuildConfig()
        changes = _overrides(
            select, zenith_edges, energy_edges, offset_edges, scheduler, n_workers, split_every
        )
        if progress is not None:
            changes.setdefault("compute", {})["progress"] = progress
        config = config.updated(changes)
        result = run_build(datastore, config, announce=_echo_err)
        written = result.write(output)
    except BkgdaskError as exc:
        _echo_err(f"Error: {exc}")
        sys.exit(1)
    s = result.summary
    _echo_err(
        f"bkgdask: {s['runs']} runs, {s['events']:,} events, {s['models']} models, "
        f"{s['seconds']:.2f} s, {s['events_per_second']:,.0f} events/s -> {written}"
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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
