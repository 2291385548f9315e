"""What the gateway and the user-facing clients share about talking to Triton: datatypes, the
shared-memory layout, error classification, the tile plan, batch chunking, and the model
catalog read from Triton's own configs. Imports neither FastAPI nor pydantic-settings."""
