"""The build: per-run tasks, grouping, tree reduction, plan and result."""
