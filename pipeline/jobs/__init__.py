"""Side-effect jobs: what a job is (``spec``), running one so every failure ends in the log
(``execution``), and running jobs and sweep hooks without Celery (``runner``)."""

from .spec import Job, JobSpec, RetryPolicy

__all__ = ["Job", "JobSpec", "RetryPolicy"]
