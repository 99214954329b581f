"""End to end: the real webserver serves the project (asset graph, checks, schedule, sensor),
and the asset graph page renders in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from segment_pipeline_tests.webserver import running_webserver

pytestmark = pytest.mark.e2e

GRAPH_QUERY = """
{
  assetNodes {
    assetKey { path }
    groupName
    dependencyKeys { path }
    kinds
    description
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { name schedules { name cronSchedule } sensors { name } }
    }
  }
}
"""


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path):
    tmp = tmp_path_factory.mktemp("webserver")
    env = {
        "SEGMENT_PIPELINE_DATA": str(sample_dir),
        "SEGMENT_PIPELINE_DB": str(tmp / "w.duckdb"),
        "SEGMENT_PIPELINE_FIGURES_DIR": str(tmp / "figures"),
    }
    with running_webserver(tmp, env) as server:
        yield server
    assert server.process.returncode is not None  # stopped cleanly


def test_graphql_shows_graph_checks_schedule_and_sensor(webserver) -> None:
    data = webserver.graphql(GRAPH_QUERY)
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    deps = {key: {"/".join(d["path"]) for d in n["dependencyKeys"]} for key, n in nodes.items()}
    assert "raw/transactions" in deps["staging/transactions"]
    assert nodes["raw/transactions"]["groupName"] == "raw"
    assert nodes["staging/transactions"]["groupName"] == "staging"
    assert "pandera" in nodes["staging/transactions"]["kinds"]
    assert all(n["description"] for n in nodes.values()), "every asset has a description"
    checks = {c["name"] for c in nodes["staging/transactions"]["assetChecksOrError"]["checks"]}
    assert {
        "rows_conserved",
        "line_key_unique",
        "required_columns_not_null",
        "quarantine_rate",
    } <= checks

    # Every analysis table, figure and the report is downstream of raw/transactions
    # (raw -> staging -> ... -> figures): walk the dependency edges from raw.
    reachable, frontier = {"raw/transactions"}, {"raw/transactions"}
    while frontier:
        frontier = {k for k, d in deps.items() if d & frontier} - reachable
        reachable |= frontier
    analysis = [k for k in nodes if k.split("/")[0] in ("marts", "figures", "report")]
    # ten seed figures, two CLV figures and three dynamics figures
    assert len([k for k in analysis if k.startswith("figures/")]) == 15
    assert "report/insights_report" in analysis
    assert sorted(set(analysis) - reachable) == []

    repos = data["repositoriesOrError"]["nodes"]
    assert [s["name"] for r in repos for s in r["schedules"]] == ["daily_refresh"]
    assert [s["name"] for r in repos for s in r["sensors"]] == ["new_transaction_files"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_asset_graph_page_renders_in_headless_chromium(webserver, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "no Chromium here: `apt-get install chromium` (make test / .ci/run install it "
            "where apt is available)"
        )
    screenshot = tmp_path / "asset_graph.png"
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'p'}",
        "--virtual-time-budget=25000",
        "--window-size=1600,1000",
    ]
    # The staging group's lineage page: its asset nodes are rendered by the UI's JavaScript.
    url = f"{webserver.url}/locations/__repository__@segment_pipeline/asset-groups/staging"
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for name in ("transactions", "quarantine", "customers", "returns", "products"):
        assert name in dom.stdout, f"{name!r} not rendered on the asset page"
    shot = subprocess.run(
        [*common, f"--screenshot={screenshot}", url], capture_output=True, text=True, timeout=180
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 10_000
