"""Model quality monitoring: input drift of prompts per model version (drift, monitor) and the
quality report over the ledger's usage and feedback records (report)."""
