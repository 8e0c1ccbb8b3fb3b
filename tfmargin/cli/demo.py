"""`make demo`: run the pipeline as far as it exists and print the results.

    python -m tfmargin.cli.demo --flagfile=flags/demo.cfg
"""

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("teacher", "mbf", "Teacher backbone (a tfmargin.models name).")
flags.DEFINE_integer("teacher_epochs", 4, "Epochs for the teacher.")
flags.DEFINE_integer("classes", 40, "Number of toy classes.")
flags.DEFINE_integer("per_class", 8, "Images per class.")
flags.DEFINE_integer("epochs", 4, "Epochs for each student.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("output", "savedmodels/demo/results.json", "Where the results JSON goes.")


def format_report(r):
    lines = ["## Model sizes", "", "| backbone | parameters | trainable | MACs (112x112) |", "|---|---|---|---|"]
    for name, s in r["sizes"].items():
        lines.append(f"| {name} | {s['params'] / 1e6:.2f} M | {s['trainable'] / 1e6:.2f} M | {s['macs'] / 1e6:.0f} M |")
    m = r["margins"]
    lines += ["", f"Per-sample MarginDistillation margins: min {m['min']:.3f}, mean {m['mean']:.3f}, "
              f"max {m['max']:.3f} (m_min 0.2, m_max 0.5)",
              f"Teacher centers unchanged by training: {r['centers_frozen']}", "",
              "## Training loss and training-set accuracy per epoch (students: same batches, same schedule)", "",
              "| epoch | " + " | ".join(r["curves"]) + " |", "|---|" + "---|" * len(r["curves"])]
    for epoch in range(max(len(c["loss"]) for c in r["curves"].values())):
        cells = [f"{c['loss'][epoch]:.3f} (acc {c['accuracy'][epoch]:.2f})" if epoch < len(c["loss"])
                 else "" for c in r["curves"].values()]
        lines.append(f"| {epoch + 1} | " + " | ".join(cells) + " |")
    lines += ["", f"{r['data']['images']} toy images, {r['data']['classes']} classes, "
              f"wall time {r['seconds']:.0f} s"]
    return "\n".join(lines)


def main(argv):
    del argv
    from tfmargin import demo
    from tfmargin.atomic import write_json

    results = demo.run(teacher=FLAGS.teacher, num_classes=FLAGS.classes, per_class=FLAGS.per_class,
                       epochs=FLAGS.epochs, teacher_epochs=FLAGS.teacher_epochs, batch_size=FLAGS.batch_size, seed=FLAGS.seed)
    print(format_report(results))
    write_json(FLAGS.output, results)
    print(f"\nwritten: {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
