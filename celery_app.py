"""The Celery app for a checkout: `celery -A celery_app worker -B`.

An installed deployment names the module itself: `celery -A signalplay.worker worker -B`.
"""

from signalplay.worker import app

__all__ = ["app"]
