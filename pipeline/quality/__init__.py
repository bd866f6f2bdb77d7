"""Quality tooling: evaluation against the gold set, its report, the benchmarks, the known-people builder."""
