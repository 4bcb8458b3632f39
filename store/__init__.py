"""The incident store (SQLModel): incidents, their alerts, decisions, actions, follow-ups and
timeline, on SQLite by default and PostgreSQL in production (`REMEDIATE_STORE__URL`).

Modules: `models` (the tables), `schema` (Alembic migrations and the check that refuses an
unmigrated database), `engine` (one engine per URL, sessions), `incidents` (the lifecycle),
`actions` (the audit rows), `follow_ups`, `queries` (reading back). It imports nothing of the
project above it.
"""
