"""Scripts that reproduce a shipped model or a measured table end to end (docs/MODELS.md, docs/RESULTS.md)."""
