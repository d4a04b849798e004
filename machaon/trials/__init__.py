"""machaon.trials: virtual trials at scale (layer 6), studies over the applications on Ray.

``machaon.trials.engine.run_study`` runs every run of a study as one Ray task (local by default,
a cluster when given an address), streams each finished run to ``DIR/runs.jsonl``, resumes a
killed study, and writes ``DIR/summary.json``, ``DIR/report.md`` and plots. The studies:

- ``machaon.trials.ortho``: pedicle screws under randomised conditions, Gertzbein-Robbins grades;
- ``machaon.trials.teleop``: operator tasks over link profiles x speeds x seeds (``teleop sweep``);
- ``machaon.trials.exo``: simulated wearers x assist gains.

Ray is imported only inside the functions that need it (and only in this package), so importing
these modules is cheap and the rest of Machaon never loads Ray.
"""

from machaon.errors import TrialError
from machaon.trials.engine import StudyResult, execute_run, ray_session, run_study
from machaon.trials.study import ClusterError, RunRecord, Study, StudyError, run_seed

__all__ = ["ClusterError", "RunRecord", "Study", "StudyError", "StudyResult", "TrialError", "execute_run",
           "ray_session", "run_seed", "run_study"]
