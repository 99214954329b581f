"""The asset layers: ingest (raw and staging), rfm, behaviour, clv, dynamics (layer.py says
what a layer module provides)."""

import warnings

# Dagster flags `backfill_policy` as beta at every asset that sets it: 25 warnings at every
# load of the code location (`make ui`'s console, `dagster` commands, every run), several of
# them at import, where the table assets are built. It is Dagster's documented way to run a
# range of partitions as one run, chosen knowingly (docs/architecture.md).
warnings.filterwarnings("ignore", message="Parameter `backfill_policy` of function")
