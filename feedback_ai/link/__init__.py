"""Linking feedback to known themes and roadmap items: matching, calibration, decisions."""
