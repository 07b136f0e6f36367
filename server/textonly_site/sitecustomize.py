"""Run by Python's ``site`` at start-up in processes whose ``PYTHONPATH`` starts with this folder (see
``server/textonly.py``): mark torchvision, torchaudio and torchcodec absent, then run the ``sitecustomize`` this
module shadows, if there is one. Standalone on purpose: it runs before anything else is importable."""

import importlib.machinery
import importlib.util
import os
import sys

for _name in ("torchvision", "torchaudio", "torchcodec"):
    sys.modules.setdefault(_name, None)


def _run_shadowed() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_run_shadowed()
