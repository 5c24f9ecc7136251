"""The cost ledger: GPU prices, per-request usage and cost, budgets and reports."""
