"""Metrics, tables and the study's claims."""
