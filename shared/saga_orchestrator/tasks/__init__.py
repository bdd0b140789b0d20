"""The seed import path of ``TaskManager``."""
