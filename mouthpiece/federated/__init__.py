"""Federated personalization of the motion model on Flower: private videos never leave clients.

Thin Flower adapters (`*_app.py`) over testable pieces: local dataset building, local training,
update clipping/quantization, privacy accounting, robust aggregation and signed publishing.
"""
