"""The capacity planner: VRAM formula, GPU catalog, performance model and recommendations.

Pure: no I/O and no torch, so the control plane's placement and the simulator can import it.
The `inferplane plan` command (cli/plan_cmd.py) does the reading and printing around it.
"""
