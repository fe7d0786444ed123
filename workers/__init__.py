"""Celery side of Chronicle: the app, its queues and routes, and thin task wrappers."""
