"""What a Job cost on ACI, and the cost reports (pure)."""
