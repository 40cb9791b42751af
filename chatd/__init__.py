"""chatd: a self-hosted chat server speaking five chat APIs over one core."""

__version__ = "0.1.0"
