"""HQ CDRs and reports: search, summary, totals per extension and trunk, CSV."""
