"""FastAPI service over `feedback_ai`."""
