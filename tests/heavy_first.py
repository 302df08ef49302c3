"""A pytest plugin, loaded by every pytest run of the project (``-p tests.heavy_first`` in pyproject's addopts): the
files that train first, in an order that lets each reuse what the one before it stored.

``make test`` runs two workers, each given whole files (``--dist loadfile``) in collection order
(``--no-loadscope-reorder``; xdist's default order, by the number of tests in a file, sent the notebooks that train to
the end or let a notebook train a model that another was training at the same moment). Here:

* the notebooks that train and store the course's cached models come first, one per worker: 01 stores the mini CLIP
  that 02, 03 and 05 load, 06 the mini InternVL that 07, 08, 09 and the rehearsal load, 02 the stage-1 Q-Former of 05;
* then the other long files, longest first, so that the short unit tests fill the end of both workers' queues.

A file not named here keeps its place after these, in the order pytest collected it.
"""

HEAVY_FIRST = (
    "notebooks/01_mllm_and_alignment.ipynb",
    "notebooks/06_internvl.ipynb",
    "notebooks/02_qformer_blip2.ipynb",
    "tests/test_rehearsal.py",
    "notebooks/03_llava.ipynb",
    "tests/test_real_track.py",
    "notebooks/05_qformer_vs_mlp.ipynb",
    "notebooks/08_xtuner_finetune.ipynb",
)


def rank(nodeid: str) -> int:
    path = nodeid.split("::", 1)[0]
    return HEAVY_FIRST.index(path) if path in HEAVY_FIRST else len(HEAVY_FIRST)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: rank(item.nodeid))  # stable: within a file and among the rest, pytest's order
