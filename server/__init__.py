"""gpt-oss inference server: one engine, many providers' wire formats."""

__version__ = "0.1.0"
