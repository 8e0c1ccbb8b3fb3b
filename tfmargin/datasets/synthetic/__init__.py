"""Embedded default dataset: procedural cartoon faces with many identities, in the real formats.

No real multi-identity face dataset can be downloaded everywhere tfmargin must run, so the demo,
the tests and the benchmarks generate one. Each identity is a seeded parameter vector (face
geometry, colours, texture, marks: `identity.py`); each image draws pose, light, expression,
occlusion, background and camera nuisances (`nuisance.py`), is rasterised with numpy
(`render.py`), aligned to the ArcFace template from its known landmarks and JPEG-encoded
(`generate.py`), and written as train.rec / val.bin / test.bin / identification.npz
(`dataset.py`) through tfmargin's own writers, so everything downstream runs the code paths
real data runs. `contact_sheet.py` draws a PNG overview. How hard a generated set is (pixel and
Fisherface baselines, a larger vs a smaller trained backbone): `examples/calibrate_synthetic`.

    from tfmargin.datasets.synthetic import write_dataset
    summary = write_dataset("data/synthetic", identities=600, images_per_identity=20, seed=0)
"""

from tfmargin.datasets.synthetic.contact_sheet import contact_sheet
from tfmargin.datasets.synthetic.dataset import (DEFAULT_SPLIT, SyntheticDatasetWarning,
                                             save_identification, split_identities,
                                             verification_pairs, write_dataset)
from tfmargin.datasets.synthetic.generate import generate, render_identity
from tfmargin.datasets.synthetic.identity import (DEFAULT_DIFFICULTY, PRESETS, Difficulty, Identity,
                                              resolve_difficulty, sample_identity)
from tfmargin.datasets.synthetic.nuisance import Nuisance, sample_nuisance
from tfmargin.datasets.synthetic.render import render
from tfmargin.datasets.synthetic.scene import render_scene, write_scenes

__all__ = ["DEFAULT_DIFFICULTY", "DEFAULT_SPLIT", "Difficulty", "Identity", "Nuisance", "PRESETS",
           "SyntheticDatasetWarning", "contact_sheet", "generate",
           "render", "render_identity", "render_scene", "resolve_difficulty", "sample_identity",
           "sample_nuisance", "save_identification", "split_identities", "verification_pairs",
           "write_dataset", "write_scenes"]
