"""A comparison's results: results.json (everything), results.md (the tables) and results.png
(each arm's mean and 95 % interval beside the control's)."""

import os

from tfmargin.atomic import write_bytes, write_json
from tfmargin.compare.arms import CONTRASTS, CONTROL, get_arm
from tfmargin.compare.held_out import LABELS, METRICS
from tfmargin.compare.stats import mean_ci, paired_difference
from tfmargin.compare.teachers import teacher_of_seeds


def summarize(config, runs):
    """{arm: {...}}: per-seed numbers, mean and interval of each metric, and the paired
    difference to the control over the seeds both finished."""
    control = runs.get(CONTROL, {})
    arms = {}
    for name in config.arms:
        arm, done = get_arm(name), runs.get(name, {})
        per_seed = {m: {s: r["metrics"][m] for s, r in done.items()} for m in METRICS}
        arms[name] = {
            "method": arm.method, "title": arm.title, "margin": arm.margin,
            "seeds": sorted(done),
            "per_seed": {m: {str(s): v for s, v in per_seed[m].items()} for m in METRICS},
            "mean": {m: mean_ci(list(per_seed[m].values())) for m in METRICS},
            "vs_control": None if name == CONTROL else {
                m: paired_difference(per_seed[m], {s: r["metrics"][m] for s, r in
                                                   control.items()}) for m in METRICS},
            "train_seconds": sum(r["train_seconds"] + r.get("starting_student", {}).get(
                "train_seconds", 0.0) for r in done.values()),
            # a starting student that a new machine had to train again, and whether its
            # numbers came out as recorded
            "retrained_start": {str(s): r["starting_student"]["matches_record"]
                                for s, r in done.items() if "starting_student" in r},
            "eval_seconds": sum(r["eval_seconds"] for r in done.values()),
        }
    return arms


def contrasts(config, runs):
    """The paired differences of CONTRASTS whose two arms this comparison runs."""
    out = []
    for a, b, question in CONTRASTS:
        if a in config.arms and b in config.arms:
            first, second = runs.get(a, {}), runs.get(b, {})
            out.append({"arm": a, "minus": b, "question": question, "difference": {
                m: paired_difference({s: r["metrics"][m] for s, r in first.items()},
                                     {s: r["metrics"][m] for s, r in second.items()})
                for m in METRICS}})
    return out


def build_results(config, runs, context):
    from tfmargin.machine import machine_info

    arms = summarize(config, runs)
    finished = sum(len(a["seeds"]) for a in arms.values())
    total = len(config.arms) * len(config.seeds)
    if "teachers" in context:  # each teacher with the seeds it taught
        seeds = teacher_of_seeds(context["teachers"], runs)
        context = {**context, "teachers": {k: {**t, "seeds": seeds.get(k, [])}
                                           for k, t in context["teachers"].items()}}
    return {
        "status": {"finished_runs": finished, "total_runs": total,
                   "complete": finished == total},
        "config": config.to_dict(),
        "control": CONTROL,
        "machine": machine_info(),
        **context,  # a report rewritten elsewhere keeps the machine the runs ran on
        "wall_seconds": round(sum(a["train_seconds"] + a["eval_seconds"]
                                  for a in arms.values()), 1),
        "arms": arms,
        "contrasts": contrasts(config, runs),
    }


def _pct(x, signed=False):
    if x is None:
        return "-"
    return f"{100 * x:+.2f}" if signed else f"{100 * x:.2f}"


def _interval(s, signed=False):
    if s["mean"] is None:
        return "-"
    if s["low"] is None:
        return _pct(s["mean"], signed)
    return f"{_pct(s['mean'], signed)} [{_pct(s['low'], signed)}, {_pct(s['high'], signed)}]"


def _teachers(results):
    """The teachers that taught finished runs (each with its seeds), else the current one."""
    taught = [t for t in results.get("teachers", {}).values() if t.get("seeds")]
    return sorted(taught, key=lambda t: t["seeds"]) if taught else [results["teacher"]]


def _md_means(results):
    teachers = _teachers(results)
    if len(teachers) == 1:
        margin = teachers[0].get("md_mean_margin", results["md_mean_margin"])
        return f"MarginDistillation's mean margin: {margin:.4f} rad."
    each = ", ".join(f"{t['md_mean_margin']:.4f} rad for seeds "
                     f"{', '.join(map(str, t['seeds']))}" for t in teachers)
    return (f"{len(teachers)} teachers of the same recipe (a teacher is not reproduced bit for "
            "bit on another kind of CPU, and the first was lost with its machine); every arm of "
            f"a seed distils the same one. MarginDistillation's mean margin: {each}.")


def format_markdown(results):
    """The tables (means; paired differences to the control and between arms) and the setup in
    a few lines."""
    arms = results["arms"]
    head = " | ".join(LABELS[m] for m in METRICS)
    lines = [f"| model | seeds | {head} |", "|---|---|" + "---|" * len(METRICS)]
    several = len(_teachers(results)) > 1
    for t in _teachers(results):
        seeds = f"seeds {', '.join(map(str, t['seeds']))}; " if several else ""
        lines.append(f"| teacher ({seeds}{t['params'] / 1e6:.1f} M parameters) | - | "
                     + " | ".join(_pct(t["metrics"][m]) for m in METRICS) + " |")
    for name, a in arms.items():
        lines.append(f"| {name}: {a['title']} | {len(a['seeds'])} | "
                     + " | ".join(_interval(a["mean"][m]) for m in METRICS) + " |")
    lines += ["", f"Paired difference to `{results['control']}` (same seeds, same batches), "
              "percentage points, mean [95 % CI]:", "",
              f"| arm | seeds | {head} |", "|---|---|" + "---|" * len(METRICS)]
    for name, a in arms.items():
        if a["vs_control"] is None:
            continue
        n = a["vs_control"][METRICS[0]]["n"]
        lines.append(f"| {name} | {n} | "
                     + " | ".join(_interval(a["vs_control"][m], True) for m in METRICS) + " |")
    pairs = [x for x in results.get("contrasts", ()) if x["difference"][METRICS[0]]["n"]]
    if pairs:
        lines += ["", "Paired differences between arms (same seeds, same batches), percentage "
                  "points, mean [95 % CI]:", "",
                  f"| question | arm - arm | seeds | {head} |", "|---|---|---|" + "---|" * len(
                      METRICS)]
        for x in pairs:
            d = x["difference"]
            lines.append(f"| {x['question']} | {x['arm']} - {x['minus']} | "
                         f"{d[METRICS[0]]['n']} | "
                         + " | ".join(_interval(d[m], True) for m in METRICS) + " |")
    c, h, st = results["config"], results["held_out"], results["status"]
    exceptions = []
    for name in arms:
        arm = get_arm(name)
        if arm.init_from:
            k = arm.images_per_identity
            exceptions.append(f"`{name}` fine-tunes that seed's `{arm.init_from}` student at lr "
                              f"{arm.lr:g}" + (f" over P x K batches of K = {k}" if k else ""))
        for seed, same in arms[name].get("retrained_start", {}).items():
            exceptions.append(f"`{name}` seed {seed} started from a `{arm.init_from}` student "
                              "trained again (students are not kept across machines), whose "
                              "numbers " + ("match its record" if same else
                                            "differ from its record"))
    lines += [
        "",
        f"Students: {c['backbone']}, {c['steps']} steps of {c['batch_size']}, cosine LR "
        f"{c['lr']:g} (warm-up {c['lr_warmup_steps']}), scale {c['scale']}, softmax warm-up "
        f"{c['softmax_warmup_steps']} + margin ramp {c['margin_ramp_steps']} steps for every "
        f"margin arm, the final weights (no selection). {_md_means(results)} Means over seeds "
        "with Student-t 95 % intervals." + (f" Except: {'; '.join(exceptions)}."
                                             if exceptions else ""),
        f"Held out: {h['test_bin']} ({h['test_pairs']} pairs, 10 folds) for the accuracy; "
        f"{h['identification']} ({h['pairwise_images']} images of "
        f"{h['pairwise_identities']} identities, every pair) for TAR@FAR and rank-1 "
        "(probes against one gallery image each plus the distractors).",
        f"Runs: {st['finished_runs']} of {st['total_runs']} finished; wall time "
        f"{results['wall_seconds'] / 3600:.2f} h on {results['machine'].get('cpus')} CPUs "
        f"({results['machine'].get('cpu', 'unknown CPU')}).",
    ]
    return "\n".join(lines)


def plot_results(results, path):
    """One panel per metric: each arm's mean with its 95 % interval, the control's mean as a
    line."""
    from tfmargin.evaluate.plots import _figure, _save

    arms = results["arms"]
    names = list(arms)
    fig = _figure(width=4.2 * len(METRICS), height=0.45 * len(names) + 1.6)
    for i, metric in enumerate(METRICS):
        ax = fig.add_subplot(1, len(METRICS), i + 1)
        for y, name in enumerate(names):
            s = arms[name]["mean"][metric]
            if s["mean"] is None:
                continue
            err = None if s["low"] is None else [[100 * (s["mean"] - s["low"])],
                                                  [100 * (s["high"] - s["mean"])]]
            ax.errorbar([100 * s["mean"]], [y], xerr=err, fmt="o", capsize=3,
                        color="C0" if name != CONTROL else "C3")
        control = arms.get(CONTROL, {}).get("mean", {}).get(metric, {})
        if control.get("mean") is not None:
            ax.axvline(100 * control["mean"], color="C3", lw=0.8, ls="--")
        for teacher in _teachers(results):
            ax.axvline(100 * teacher["metrics"][metric], color="0.4", lw=0.8, ls=":")
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names if i == 0 else [""] * len(names))
        ax.invert_yaxis()
        ax.set_xlabel(f"{LABELS[metric]} (%)")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("mean and 95 % CI over seeds (dashed: ArcFace control; dotted: teacher)")
    return _save(fig, path)


def write_results(config, runs, context):
    """Write results.json, results.md and results.png under config.output_dir; returns the
    results dict."""
    results = build_results(config, runs, context)
    out = config.output_dir
    write_json(os.path.join(out, "results.json"), results)
    write_bytes(os.path.join(out, "results.md"), (format_markdown(results) + "\n").encode())
    plot_results(results, os.path.join(out, "results.png"))
    return results
