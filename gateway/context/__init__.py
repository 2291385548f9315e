"""The Image Context Extractor (seed 003): captions, objects, embeddings, search, duplicates."""
