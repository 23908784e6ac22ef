"""Reports: notebooks run with papermill, their manifests, the index, the schedule."""

from movieflix_lab.reports.params import ParameterError, coerce, notebook_parameters
from movieflix_lab.reports.runner import ReportRun, list_notebooks, rerun, run_report

__all__ = [
    "ParameterError",
    "ReportRun",
    "coerce",
    "list_notebooks",
    "notebook_parameters",
    "rerun",
    "run_report",
]
