"""The teachers of one comparison, kept in `output_dir/teachers.json`.

A comparison has one teacher until its machine is lost. A teacher trained again with the same
recipe and `--deterministic` is the same teacher on the same kind of CPU, but not across kinds
(oneDNN picks its kernels by instruction set: on another EPYC the first 50 steps already end
at another loss), so a run that outlives its machine may have to go on with a new teacher.
The seed is the unit that keeps the comparison fair: every arm of one seed distils the same
teacher (its paired differences compare arms on equal terms), and a seed finished under an
earlier teacher keeps it. A seed left half-finished by an earlier teacher is refused until its
run files are moved aside, so that no seed mixes teachers.

One entry per teacher, keyed by its weights' sha256 (a .keras file also holds the time it was
saved, so one teacher may have several files, all in `files_sha256`): its description, its
numbers on the held-out sets, the checksum of the teacher signal made with it, and
MarginDistillation's mean margin with it (the margin of `arcdistill_md_mean`).
"""

import os

from tfmargin.atomic import read_json, write_json

FILE = "teachers.json"


class Teachers:
    def __init__(self, path, entries):
        self.path, self.entries = path, entries

    @classmethod
    def load(cls, output_dir, save=True):
        """The teachers recorded in output_dir; a directory from before teachers.json (one
        teacher: teacher.json and md_mean_margin.json) gets its one entry from those, saved
        at once unless `save` is False."""
        path = os.path.join(output_dir, FILE)
        entries = read_json(path)
        if entries is None:
            entries = {}
            old, md = read_json(os.path.join(output_dir, "teacher.json")), read_json(
                os.path.join(output_dir, "md_mean_margin.json"))
            if old and md and old.get("weights_sha256") and "metrics" in old:
                files = {old.get("sha256"), *old.get("files_sha256", ())} - {None}
                entries[old["weights_sha256"]] = {
                    **{k: v for k, v in old.items() if k != "sha256"},
                    "files_sha256": sorted(files), "signal": md["key"]["signal"],
                    "md_mean_margin": md["margin"]}
            if entries and save:  # teacher.json may change hands before anything else is saved
                write_json(path, entries)
        return cls(path, entries)

    def key(self, sha):
        """The weights' sha256 of the teacher a record names by its weights or by one of its
        files; None for a teacher this comparison has not seen."""
        if sha in self.entries:
            return sha
        for key, entry in self.entries.items():
            if sha in entry.get("files_sha256", ()):
                return key
        return None

    def record(self, teacher, signal, md_mean_margin):
        """Add (or refresh) the current teacher: teacher.json's content, the checksum of its
        signal and its mean margin; written at once."""
        key = teacher["weights_sha256"]
        files = set(self.entries.get(key, {}).get("files_sha256", ())) | set(
            teacher.get("files_sha256", ()))
        self.entries[key] = {**{k: v for k, v in teacher.items() if k != "sha256"},
                             "files_sha256": sorted(files), "signal": signal,
                             "md_mean_margin": md_mean_margin}
        write_json(self.path, self.entries)
        return key


def teacher_of_seeds(entries, runs):
    """{weights sha256: sorted seeds} of the finished runs (a seed has one teacher)."""
    teachers = Teachers(None, entries)
    seeds = {}
    for done in runs.values():
        for seed, record in done.items():
            key = teachers.key((record.get("inputs") or {}).get("teacher"))
            seeds.setdefault(key, set()).add(seed)
    return {k: sorted(v) for k, v in seeds.items()}

