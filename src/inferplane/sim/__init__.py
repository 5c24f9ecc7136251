"""A discrete-event simulator that replays request traces through the platform's real code.

Each simulated replica runs the engine's real scheduler and KV cache with a step-time model
from the planner instead of a forward pass; each arrival goes through the gateway's real
balancing policy over real replica snapshots; the pool is sized by the real autoscaler, on
signals from the controller's own function, with the controller's own choice of which
replicas come and go and its own queue for requests held at zero. Time is simulated: nothing
sleeps.
"""

from inferplane.sim.faults import FaultEvent, Faults
from inferplane.sim.load import load_trace
from inferplane.sim.report import FleetReport, SimReport
from inferplane.sim.run import SimOptions, simulate, simulate_fleet
from inferplane.sim.trace import Trace, TraceRequest, load_azure_trace

__all__ = [
    "FaultEvent", "Faults", "FleetReport", "SimOptions", "SimReport", "Trace", "TraceRequest",
    "load_azure_trace", "load_trace", "simulate", "simulate_fleet",
]  # fmt: skip
