"""The health dashboard: FastAPI pages, a JSON API under /api/v1 and /metrics, all read from the state store.

Public surface: `create_app` (in `app`), `views` (the read model the pages, the API and /metrics share).
Importing this package loads nothing heavy; `app` imports FastAPI.
"""
