"""Stoker's database schema (SQLAlchemy 2). Migrations live in `models/migrations`."""

from models.attempt import OUTCOMES, Attempt
from models.base import Base
from models.frame_result import FrameResult
from models.job import FINISHED, STATUSES, Job

__all__ = ["FINISHED", "OUTCOMES", "STATUSES", "Attempt", "Base", "FrameResult", "Job"]
