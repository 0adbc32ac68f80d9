"""Where a graph runs: backends (in-process, LocalCluster, scheduler address, batch systems)."""
