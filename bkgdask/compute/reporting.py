"""Around a distributed computation: sanity checks of workers and addresses, progress, reports."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import SchedulerError
from ..io.files import atomic_path

log = logging.getLogger(__name__)

#: Local workers allowed per core: beyond that only memory and start-up time grow.
MAX_WORKERS_PER_CORE = 4

#: Seconds to wait for a scheduler address to answer.
CONNECT_TIMEOUT_S = 5.0


def default_workers() -> int:
    """Cores available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_n_workers(n_workers: int | None) -> None:
    """Warn above one local worker per core; refuse above :data:`MAX_WORKERS_PER_CORE` per core.

    Raises
    ------
    SchedulerError
        If ``n_workers`` exceeds the limit.
    """
    cores = default_workers()
    if n_workers is None or n_workers <= cores:
        return
    limit = MAX_WORKERS_PER_CORE * cores
    if n_workers > limit:
        raise SchedulerError(
            f"--n-workers {n_workers} is more than {MAX_WORKERS_PER_CORE} per core "
            f"({limit} on this machine's {cores} cores); give at most {limit}"
        )
    log.warning("%d workers on %d cores: they will compete for the cores", n_workers, cores)


def probe_address(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Check that something listens at a ``tcp://`` or ``tls://`` scheduler address.

    Raises
    ------
    SchedulerError
        If the host does not resolve, nothing listens or nothing answers in time.
    """
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address)
    if parts.scheme not in ("tcp", "tls"):
        return
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or port is None:
        raise SchedulerError(f"scheduler address {address} lacks a host or port (tcp://HOST:PORT)")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except socket.gaierror:
        raise SchedulerError(f"cannot reach scheduler {address}: unknown host {host!r}") from None
    except TimeoutError:
        raise SchedulerError(
            f"cannot reach scheduler {address}: no answer within {timeout_s:g} s"
        ) from None
    except OSError as exc:
        raise SchedulerError(f"cannot reach scheduler {address}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def performance_report_to(path: str | Path | None):
    """Record a Dask performance report with inline resources, written atomically."""
    if path is None:
        yield
        return
    from distributed import performance_report

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, performance_report(filename=str(tmp), mode="inline"):
        yield


class StderrProgressBar:
    """distributed's text progress bar, drawn on stderr."""

    @staticmethod
    def run(futures: Sequence) -> None:
        from distributed.diagnostics.progressbar import TextProgressBar

        class Bar(TextProgressBar):
            def _draw_bar(self, remaining, all, **kwargs):
                with contextlib.redirect_stdout(sys.stderr):
                    super()._draw_bar(remaining, all, **kwargs)

            def _draw_stop(self, **kwargs):
                with contextlib.redirect_stdout(sys.stderr):
                    super()._draw_stop(**kwargs)

        Bar(futures, complete=True)
