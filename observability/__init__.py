"""Observability as code for the OmniSQL lab: Prometheus rules (``rules/``), runbook
queries (``runbook_queries.yml``, read by :mod:`observability.queries`) and Grafana
dashboards built by :mod:`observability.dashboards` (``dashboards/*.json``)."""
