"""The import paths that moved in the renovation still work for users' code."""

import importlib


def test_moved_modules_are_re_exported():
    pairs = [("tfmargin.data.synthetic", "tfmargin.datasets.synthetic"),
             ("tfmargin.train.signal", "tfmargin.distill"),
             ("tfmargin.heads.angular", "tfmargin.margins")]
    for old, new in pairs:
        old_module, new_module = importlib.import_module(old), importlib.import_module(new)
        assert old_module.__all__ == new_module.__all__
        for name in new_module.__all__:
            assert getattr(old_module, name) is getattr(new_module, name), (old, name)


def test_synthetic_submodules_keep_their_old_names():
    import tfmargin.data.synthetic.identity as old
    import tfmargin.datasets.synthetic.identity as new

    assert old is new
