"""What every benchmark row shares: the machine description, the result record, the table."""

import os
import time

from tfmargin.atomic import write_json
from tfmargin.machine import machine_info


def result(name, *, subject, baseline, value, baseline_value, unit, higher_is_better,
           goal=None, details=None, command="make bench"):
    """One row's record. `ratio` is value / baseline_value; `goal` is a ratio bound:
    `met` is ratio >= goal when higher is better, else ratio <= goal."""
    ratio = value / baseline_value if baseline_value else float("nan")
    met = None
    if goal is not None:
        met = bool(ratio >= goal) if higher_is_better else bool(ratio <= goal)
    return {
        "name": name,
        "subject": subject,
        "baseline": baseline,
        "unit": unit,
        "value": value,
        "baseline_value": baseline_value,
        "ratio": ratio,
        "higher_is_better": higher_is_better,
        "goal": goal,
        "met": met,
        "details": details or {},
        "machine": machine_info(),
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
    }


def proc_status_bytes(field):
    """A memory field of this process from /proc/self/status (Linux), in bytes: VmRSS (now),
    VmHWM (the peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss():
    """Start this process's peak RSS (VmHWM) over from its current RSS (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def write_result(record, directory):
    """Write bench/results/<name>.json atomically (a killed run leaves the old file intact)."""
    return write_json(os.path.join(directory, f"{record['name']}.json"), record, sort_keys=True)


def _fmt(x):
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def markdown_table(records):
    head = "| row | subject | baseline | unit | value | baseline value | ratio | goal | met |"
    lines = [head, "|" + "---|" * 9]
    for r in records:
        goal = "" if r["goal"] is None else (">= " if r["higher_is_better"] else "<= ") + _fmt(r["goal"])
        met = "" if r["met"] is None else ("yes" if r["met"] else "no")
        lines.append(
            f"| {r['name']} | {r['subject']} | {r['baseline']} | {r['unit']} | {_fmt(r['value'])} | "
            f"{_fmt(r['baseline_value'])} | {_fmt(r['ratio'])} | {goal} | {met} |")
    return "\n".join(lines)
