import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils import data, viz  # noqa: E402


def test_tile_boxes_cover_the_image_row_by_row():
    boxes = viz.tile_boxes((300, 200), (3, 2))
    assert len(boxes) == 6
    assert (
        boxes[0] == (0, 0, 100, 100) and boxes[2] == (200, 0, 300, 100) and boxes[-1] == (200, 100, 300, 200)
    )


def test_figures_render(tmp_path):
    items = data.make_shapes(5, image_size=32)
    figs = [
        viz.image_grid([it.image for it in items], [it.caption for it in items], ncols=3),
        viz.draw_tiles(data.sample_photo("coffee"), (3, 2)),
        viz.mask_heatmap(
            torch.tril(torch.ones(5, 5)).bool(), labels=list("abcde"), boundary=2, title="causal"
        ),
        viz.similarity_heatmap(torch.randn(4, 4), row_labels=list("abcd"), annotate=True),
    ]
    for i, fig in enumerate(figs):
        fig.savefig(tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").stat().st_size > 1000
        plt.close(fig)


def test_bad_arguments():
    with pytest.raises(ValueError):
        viz.image_grid([])
    with pytest.raises(ValueError, match="exactly one"):
        viz.draw_tiles(data.sample_photo("coffee"))
    with pytest.raises(ValueError, match="2-D"):
        viz.mask_heatmap(torch.ones(3))


def test_every_drawn_diagram_is_committed_and_shows():
    import importlib.util

    from course_utils import paths

    spec = importlib.util.spec_from_file_location("draw_diagrams", paths.images_dir() / "draw_diagrams.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.DIAGRAMS
    for name in module.DIAGRAMS:
        svg = viz.show_diagram(name)
        assert "<svg" in svg.data
    with pytest.raises(FileNotFoundError, match="available: .*mllm_pipeline"):
        viz.show_diagram("nope")


def test_committed_diagrams_are_what_the_script_draws(tmp_path, monkeypatch):
    """Redrawing gives byte-identical SVGs (stable ids), so a stale diagram shows up here."""
    import importlib.util

    from course_utils import paths

    spec = importlib.util.spec_from_file_location(
        "draw_diagrams_check", paths.images_dir() / "draw_diagrams.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    for name, draw in module.DIAGRAMS.items():
        draw()
        committed = (paths.images_dir() / f"{name}.svg").read_bytes()
        assert (tmp_path / f"{name}.svg").read_bytes() == committed, (
            f"images/{name}.svg is stale: run python images/draw_diagrams.py"
        )
