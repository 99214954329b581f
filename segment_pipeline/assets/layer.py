"""What every layer module provides, so that `definitions.py` assembles them the same way.

A layer module (`assets/clv.py`, `dynamics.py`; for the packages `assets/rfm/` and
`behaviour/`, their `__init__.py`) has:
- `build_assets(layer: LayerContext) -> list[dg.AssetsDefinition]`: its table assets (and
  checks), built for this dataset's month partitions and figures folder;
- `RESOURCES`: its settings resource(s), by resource key;
- `FIGURE_LAYER`: its figures, which one step draws for every layer (`figures.figure_assets`).
The ingest layer (`assets/ingest.py`) has `build_assets` only (its resources, the dataset and
the warehouse, come from the settings in `definitions.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg


@dataclass(frozen=True)
class LayerContext:
    """What assets are built for: the month partitions of raw and staging (the snapshot assets
    share the same object, so their partitions never disagree) and the folder the figures and
    the report are written to."""

    partitions_def: dg.PartitionsDefinition
    figures_dir: Path
