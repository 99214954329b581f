"""Shared plumbing for figure assets: render headless, write the PNG, store it in DuckDB and
preview it inline in the Dagster UI.

Figures are deterministic for the same data: the Agg backend, a fixed DPI, and PNG metadata
without the matplotlib version or a timestamp, so the bytes (and their hash) only change when
the picture does.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures render on servers and in CI without a display

import dagster as dg
import duckdb
from matplotlib.figure import Figure

from segment_pipeline.tables import Column, TableDef, ensure_table

FIGURE_DPI = 110

FIGURES_TABLE = TableDef(
    schema="figures",
    name="figures",
    description="Every rendered figure: its file name, the PNG bytes and their SHA-256.",
    columns=(
        Column(
            "name",
            "VARCHAR",
            "File name of the figure, e.g. spa_segment_top5_products.png",
            nullable=False,
        ),
        Column("asset_key", "VARCHAR", "The Dagster asset that renders it"),
        Column("png", "BLOB", "The PNG bytes"),
        Column("sha256", "VARCHAR", "SHA-256 of the PNG bytes"),
        Column("width_px", "INTEGER", "Width in pixels"),
        Column("height_px", "INTEGER", "Height in pixels"),
        Column("file_path", "VARCHAR", "Where the PNG file was written"),
    ),
    primary_key=("name",),
)

#: Colour-blind-safe qualitative palette (Okabe & Ito), used by every figure for consistency.
OKABE_ITO = [
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
    "#999999",
]


def render_png(fig: Figure) -> bytes:
    """Render a matplotlib figure to deterministic PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(
        buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight", metadata={"Software": None}
    )
    return buffer.getvalue()


def publish_figure(
    conn: duckdb.DuckDBPyConnection,
    fig: Figure,
    name: str,
    figures_dir: Path,
    asset_key: str,
) -> dict[str, Any]:
    """Write `fig` as `figures_dir/name`, upsert it into `figures.figures`, and return the
    metadata an asset should report (path, hash, size and an inline preview)."""
    import matplotlib.pyplot as plt

    png = render_png(fig)
    width, height = (int(v) for v in fig.get_size_inches() * FIGURE_DPI)
    plt.close(fig)
    figures_dir.mkdir(parents=True, exist_ok=True)
    path = figures_dir / name
    path.write_bytes(png)
    digest = hashlib.sha256(png).hexdigest()

    ensure_table(conn, FIGURES_TABLE)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"DELETE FROM {FIGURES_TABLE.fqn} WHERE name = ?", [name])
        conn.execute(
            f"INSERT INTO {FIGURES_TABLE.fqn} VALUES (?, ?, ?, ?, ?, ?, ?)",
            [name, asset_key, png, digest, width, height, str(path)],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return figure_metadata(png, path, digest)


def figure_metadata(png: bytes, path: Path, digest: str) -> dict[str, Any]:
    encoded = base64.b64encode(png).decode("ascii")
    return {
        "path": dg.MetadataValue.path(str(path)),
        "sha256": dg.MetadataValue.text(digest),
        "size_bytes": dg.MetadataValue.int(len(png)),
        "preview": dg.MetadataValue.md(f"![{path.name}](data:image/png;base64,{encoded})"),
    }
