"""The command line: ``build``, ``simulate``, ``validate``, ``plot``, ``config``, ``cluster``."""

# Heavy imports (dask, gammapy, xarray) happen inside the commands, so ``bkgdask --help``
# starts fast. One error policy: a BkgdaskError is one line (exit 1), Ctrl-C one line (130).

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from pathlib import Path

import click

from .. import __version__
from ..errors import BkgdaskError

log = logging.getLogger("bkgdask")

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]

#: BLAS on one thread, as Dask sets it for its workers (a user's own values are kept). A
#: build's parallelism is Dask's (runs) and its fits' (groups side by side, each with BLAS on
#: one thread); OpenBLAS's threads would only spin, about 0.1 s of a core when numpy loads it
#: and again beside the fits after workers are forked (alternated pairs: 0.95 of the wall
#: time of a 600-run build, 0.97 at 45 H.E.S.S. runs, BKG_3D builds unchanged).
ONE_BLAS_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def batch_options(command):
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


def echo_err(message: str) -> None:
    """One line on stderr."""
    click.echo(message, err=True)


@contextlib.contextmanager
def user_errors():
    """Report a user's error in one line and exit 1; Ctrl-C: one line and exit 130."""
    try:
        yield
    except BkgdaskError as exc:
        echo_err(f"Error: {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        echo_err("bkgdask: interrupted")
        # What is torn down after this line (clients, clusters) stays quiet.
        logging.disable(logging.CRITICAL)
        sys.stderr.flush()
        sys.stderr = open(os.devnull, "w")
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
    if click.get_current_context().invoked_subcommand != "build":
        gc.enable()  # only ``build`` calls imports_done (see main)


def main() -> None:
    """The ``bkgdask`` console script.

    The cyclic garbage collector is off while ``build`` imports numpy,
    pandas, xarray and dask (they make no garbage cycles, and each full
    collection in between traverses all they made so far: 0.1 s of a 1.1 s
    build); the build then freezes what exists out of the collector's way
    (:func:`imports_done`) and turns it on again, before any worker is forked
    (the workers' collections then touch no inherited page). Other commands
    turn it on at once. Whatever is alive at the end is frozen too, so that the
    interpreter's exit does not traverse it once more. Exit handlers run and
    every file is flushed and closed as before.
    """
    # The configuration's pydantic models need no pydantic plugin: without this
    # pydantic reads the entry points of every installed package to look for
    # some (30-50 ms of a 1.1 s build here). A value set by the user is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    for name, value in ONE_BLAS_THREAD.items():
        os.environ.setdefault(name, value)  # before numpy loads its BLAS
    gc.disable()
    try:
        cli()
    finally:
        imports_done()


def imports_done() -> None:
    """Freeze every object now alive out of the collector's way and turn it on (see main)."""
    gc.freeze()
    gc.enable()


# The commands register themselves on the group.
from . import build, commands  # noqa: E402, F401
