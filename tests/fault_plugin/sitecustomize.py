"""Runs at the start of every Python process with this directory on PYTHONPATH (tests only)."""

import faulty_components

faulty_components.register()
