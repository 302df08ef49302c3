"""A pytest plugin, loaded by every pytest run of the project (``-p tests.nbval_timeout`` in pyproject's addopts):
nbval's wait for a cell's output, lengthened.

nbval waits 5 s for a cell's output messages once the cell has finished, and fails the cell when they come later. On
two busy cores (two pytest workers, each with a kernel, one of them training) the messages of a cell that printed
progress bars were measured arriving later than that (03 cell 6 in ``make test``; 05 cell 4 in ``make test-kernel``,
which collects only notebooks, so a hook in ``tests/conftest.py`` never ran there): wait up to 60 s."""

OUTPUT_TIMEOUT_S = 60


def pytest_collection_modifyitems(config, items):
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = OUTPUT_TIMEOUT_S
