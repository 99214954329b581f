"""The behaviour layer's parameters: the `behaviour_settings` resource (BehaviourSettings),
read by the segment tables, the strategy (its validated rule table), the figures and the report."""

import dagster as dg

from segment_pipeline.logic.behaviour import ClusterSettings
from segment_pipeline.logic.strategy import RuleTable, StrategyRuleError, load_rule_table

RESOURCE_KEY = "behaviour_settings"


class BehaviourSettings(dg.ConfigurableResource):
    """Parameters of the behaviour-based segmentation and the strategy (seed B).

    The defaults work on the bundled sample and on Black Friday data.
    """

    min_customers_per_occupation: int = 10
    """Occupation codes with fewer customers than this are Occ_Other (not ranked)."""
    strategy_rules_path: str | None = None
    """A YAML rule table; None = the bundled segment_pipeline/config/strategy_rules.yaml."""
    histogram_bins: int = 60
    """Bins of the log1p(amount) histogram (table and figure)."""
    price_cluster_max_components: int = 6
    """Price clusters: Gaussian mixtures on log1p(amount) with 1..this many components are
    fitted and the lowest BIC wins."""
    price_cluster_sample_lines: int = 20_000
    """The mixture is fitted on at most this many lines (a deterministic sample chosen in
    DuckDB); every line is then counted in its cluster."""
    top_segments: int = 10
    """Segments listed in the report (and at most 5 labelled in the value map)."""

    def cluster_settings(self) -> ClusterSettings:
        return ClusterSettings(
            bins=self.histogram_bins,
            max_components=self.price_cluster_max_components,
            sample_lines=self.price_cluster_sample_lines,
        )

    def rule_table(self) -> RuleTable:
        """The validated rule table; an invalid one stops the run with the message."""
        try:
            return load_rule_table(self.strategy_rules_path)
        except StrategyRuleError as exc:
            raise dg.Failure(description=f"Invalid strategy rules: {exc}") from None
