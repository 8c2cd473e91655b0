"""Veil's research and benchmark code: the protection benchmark, its report, the tuning runs.

Imports the shipped package `veil`; `veil` never imports this. Not part of the veil wheel:
installed from the checkout into the development venv (`pip install -e research`, done by
`scripts/test`).
"""
