"""tomarena.analysis: propensities, alignment with the teacher, statistics, equilibria, tournaments, plots, report.
Reads run directories and result files only; never imports torch, transformers or ray."""

from tomarena.analysis.alignment import headline, improvement, scenario_table, summarize
from tomarena.analysis.load import load_runs, read_propensity_file
from tomarena.analysis.propensity import donation_table, propensity_table

__all__ = ["donation_table", "headline", "improvement", "load_runs", "propensity_table", "read_propensity_file",
           "scenario_table", "summarize"]
