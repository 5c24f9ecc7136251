"""Actuators: what turns the controller's decisions into running replicas."""
