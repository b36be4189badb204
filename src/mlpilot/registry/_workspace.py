"""The workspace now lives in the base layer (`mlpilot._workspace`); kept so old imports work."""

from mlpilot._workspace import DEFAULT_WORKSPACE, Workspace

__all__ = ["DEFAULT_WORKSPACE", "Workspace"]
