"""Themes: refits over stored mention vectors, a registry with stable IDs, live assignment."""
