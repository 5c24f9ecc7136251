"""Telemetry: metric names in one place, the GPU collector (NVML), tracing (OpenTelemetry),
JSON logs, the status page, and the operator artefacts (Grafana dashboard, alert rules)."""
