"""Federated personalization of the motion model on Flower: private videos never leave clients.

Thin Flower adapters (`*_app.py`) over testable pieces: local dataset building, local training,
update clipping/quantization, privacy accounting, robust aggregation and signed publishing.

    task         client data from videos, weights, local training (FedProx, DP-SGD), updates
    compression  8-bit updates on a grid shared by all clients (SecAgg-compatible)
    privacy      client-level DP + RDP accountant, per-record DP-SGD parameters
    client_app   ClientApp: fine-tune, clip, encode, SecAgg+
    server_app   ServerApp pieces: FederationParams, UpdateFedAvg, SecAgg+ workflow, rounds
    publish      rounds as signed bundles with lineage in the registry; resume; canary
    federation   simulate(); server set-up shared by simulation and deployment
    simulation   in-process (or Ray) engine for ServerApp + ClientApps
    deploy       SuperLink / SuperNode / `flwr run` commands, the deployed apps' settings
    flower_app   the components a SuperLink / SuperNode load by reference
    owner        the data owner's side: private data file, personal checkpoint, joining
    population, attack, robust   simulated clients, gradient inversion, robust aggregation
Nothing is imported here: Flower, torch and Opacus load on use. See docs/federated.md.
"""
