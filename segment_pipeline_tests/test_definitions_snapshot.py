"""A snapshot of the project's definitions: asset keys with their groups and kinds, checks
(blocking or not), jobs, schedules and sensors. A rename or a new asset changes the snapshot,
so it is a visible decision in review: regenerate with

    SEGMENT_PIPELINE_UPDATE_SNAPSHOTS=1 .venv/bin/pytest -k definitions_match_the_snapshot
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from segment_pipeline.definitions import build_definitions
from segment_pipeline_tests.conftest import SAMPLE_DIR, settings_for

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    repo = defs.get_repository_def()
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "partitioned": node.is_partitioned,
            "code_reference": "dagster/code_references" in node.metadata,
        }
    checks = {
        f"{key.asset_key.to_user_string()}:{key.name}": {
            "blocking": graph.get_check_spec(key).blocking
        }
        for key in sorted(
            graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)
        )
    }
    return {
        "assets": assets,
        "checks": checks,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "schedules": sorted(s.name for s in repo.schedule_defs),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "resources": sorted(repo.get_top_level_resources()),
    }


def test_definitions_match_the_snapshot(tmp_path: Path) -> None:
    described = describe(build_definitions(settings_for(SAMPLE_DIR, tmp_path / "w.duckdb")))
    if os.environ.get("SEGMENT_PIPELINE_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(described, indent=2, sort_keys=True) + "\n")
    assert described == json.loads(SNAPSHOT.read_text()), (
        "the definitions changed: if that is intended, regenerate the snapshot (module docstring)"
    )
    # Every asset links to its source lines in the UI.
    assert all(asset["code_reference"] for asset in described["assets"].values())
