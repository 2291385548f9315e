"""Model pipelines: pure numpy work around model sessions, with no HTTP or Triton code."""
