"""Deployment artefacts rendered from a fleet file: the Kubernetes Helm chart (and the same
objects as plain manifests). `inferplane deploy kubernetes` is the command."""
