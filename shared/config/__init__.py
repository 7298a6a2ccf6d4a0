"""The one Settings object, read from the environment in one place, and its checks."""
