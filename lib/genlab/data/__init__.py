"""Embedded datasets (shipped or generated, offline) and loaders for real datasets from a local folder."""
from genlab.data.mnist import mnist5k

__all__ = ["mnist5k"]
