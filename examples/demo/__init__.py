"""The paper end to end on the embedded synthetic dataset (`make demo`); see pipeline.py."""

from examples.demo.pipeline import (ORDER, SHIPPED_TEACHER, DemoConfig, ensure_dataset,
                                    ensure_signal, ensure_teacher, export_best, format_results,
                                    run, summarize, train_students)

__all__ = ["ORDER", "SHIPPED_TEACHER", "DemoConfig", "ensure_dataset", "ensure_signal",
           "ensure_teacher", "export_best", "format_results", "run", "summarize",
           "train_students"]
