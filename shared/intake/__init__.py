"""What arrives: message decoding, the request schema and validation, the deferral envelope (pure)."""
