"""The seed's `gfpp.core`: the planner (`orchestrator`) and the backend registry."""
