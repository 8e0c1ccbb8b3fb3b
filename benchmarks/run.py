"""`make bench`: run benchmark rows, write bench/results/<row>.json, print a markdown table.

    python -m benchmarks.run                       # every row
    python -m benchmarks.run --rows=train_step --batch_size=256

Exit codes: 0 done, 1 failed while working, 2 bad usage (one `error:` line on stderr).
"""

from absl import app, flags

from tfmargin.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_list("rows", ["all"], "Rows to run (file names under bench/results/), or 'all'.")
flags.DEFINE_string("output_dir", "bench/results", "Where each row's JSON is written.")
flags.DEFINE_bool("quick", False, "Tiny problem sizes to check the code path; not for reporting.")
flags.DEFINE_integer("batch_size", None, "Batch size for rows that train or stream (row default if unset).")
flags.DEFINE_integer("repeats", None, "Timed repetitions for rows that take it (row default if unset).")
flags.DEFINE_string("model", None, "A trained model (.keras) for rows that measure one (export: "
                    "fills the accuracy columns; default: the demo's student when it exists).")
flags.DEFINE_string("test_bin", None, "Held-out verification .bin for rows that measure accuracy.")
flags.DEFINE_string("held_out", None, "Identification set (.npz) of unseen identities: the "
                    "export row's TAR@FAR 1e-3 / 1e-4 over all of its pairs.")


def _accepts(run, name):
    import inspect

    params = inspect.signature(run).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


@common.command
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if not FLAGS.quick:  # --quick writes nothing
        common.check_output("output_dir", FLAGS.output_dir, "dir")
    from benchmarks import row_modules
    from benchmarks.common import markdown_table, write_result

    modules = row_modules()
    wanted = list(modules) if FLAGS.rows == ["all"] else FLAGS.rows
    unknown = [r for r in wanted if r not in modules]
    if unknown:
        raise app.UsageError(f"--rows: unknown row(s) {unknown}; known: {sorted(modules)}")
    options = {k: v for k, v in (("batch_size", FLAGS.batch_size), ("repeats", FLAGS.repeats),
                                 ("model", FLAGS.model), ("test_bin", FLAGS.test_bin),
                                 ("held_out", FLAGS.held_out))
               if v is not None}
    records = []
    for name in wanted:
        print(f"[bench] {name}: {modules[name].DESCRIPTION}", flush=True)
        run = modules[name].run
        record = run(quick=FLAGS.quick, **{k: v for k, v in options.items() if _accepts(run, k)})
        if not FLAGS.quick:
            write_result(record, FLAGS.output_dir)
        records.append(record)
    print(markdown_table(records))


if __name__ == "__main__":
    common.run(main)
