"""Azure Container Registry stand-in: the token exchange and the pull check the virtual node asks."""
