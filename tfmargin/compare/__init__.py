"""Distillation methods compared on equal terms: one teacher, one student recipe, the same
batches and seeds for every arm, numbers on held-out identities with intervals over seeds and
paired differences to the ArcFace student.

    from tfmargin.compare import CompareConfig, run_comparison
    results = run_comparison(CompareConfig(teacher="runs/teacher/classifier.keras",
                                           data="data/large/train.rec", ...))

arms.py (what each arm trains), config.py (CompareConfig and each run's TrainConfig),
held_out.py (the held-out sets and one model's numbers), stats.py (t intervals, paired
differences), run.py (the resumable loop; report_results rebuilds the report from the run
files), teachers.py (the teachers of one comparison), report.py (results.json / .md / .png). The CLI is
`python -m tfmargin.cli.compare`.
"""

from tfmargin.compare.arms import ARMS, CONTROL, MD_MEAN, Arm, get_arm, register_arm
from tfmargin.compare.config import CompareConfig, CompareError
from tfmargin.compare.held_out import METRICS, HeldOut, evaluate_held_out, load_held_out
from tfmargin.compare.run import collect_runs, report_results, run_comparison, run_one
from tfmargin.compare.stats import mean_ci, paired_difference, t_quantile

__all__ = ["ARMS", "Arm", "CONTROL", "CompareConfig", "CompareError", "HeldOut", "MD_MEAN",
           "METRICS", "collect_runs", "evaluate_held_out", "get_arm", "load_held_out", "mean_ci",
           "paired_difference", "register_arm", "report_results", "run_comparison", "run_one",
           "t_quantile"]
