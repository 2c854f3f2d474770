"""Multi-tenant generation service: the control layer in front of the engine.

Built by `create_app(settings)` (API) and `run_worker(settings)` (job execution); nothing
happens on import. Settings are read in one place, `config.py`.
"""
