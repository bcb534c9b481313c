"""Fairness policies in the service: stored versions, activation, preview, announcements."""
