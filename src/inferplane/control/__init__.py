"""The control plane's decisions: autoscaling, model tiers, placement and rollout."""
