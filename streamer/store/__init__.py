"""The profile store: Redis profiles and their Lua scripts, profile CSV import and export,
and batch scoring of stored profiles (used by the worker and by offline commands)."""
