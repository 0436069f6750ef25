"""The comparison study behind ``dotrec study``: tune, retrain, test, report.

See :mod:`dotrec.study.driver` for the procedure, :mod:`dotrec.study.stats` for the paired
comparison and :mod:`dotrec.study.report` for the report files.
"""

from dotrec.study.driver import (
    Cell,
    SeedRun,
    SilentListener,
    StudyConfig,
    StudyListener,
    StudyResult,
    run_study,
)
from dotrec.study.published import PUBLISHED, Published
from dotrec.study.report import write_report
from dotrec.study.stats import Comparison, Paired, comparisons, paired_test

__all__ = [
    "PUBLISHED",
    "Cell",
    "Comparison",
    "Paired",
    "Published",
    "SeedRun",
    "SilentListener",
    "StudyConfig",
    "StudyListener",
    "StudyResult",
    "comparisons",
    "paired_test",
    "run_study",
    "write_report",
]
