"""Writes parameters.json — the plan's plan-only model — from the model train_lw.py builds:
every named_parameters() name and shape, in order.  python3 make_parameters.py"""
import json
import os

from train_lw import TinyBert

here = os.path.dirname(os.path.abspath(__file__))
names = [{"name": n, "shape": list(p.shape)} for n, p in TinyBert().named_parameters()]
with open(os.path.join(here, "parameters.json"), "w") as f:
    f.write("[\n" + ",\n".join("  " + json.dumps(x, separators=(",", ":")) for x in names) + "\n]\n")
