"""Ensembles listed as trees over their steps: the order every face shows models in."""

from gpuwatch import model
from gpuwatch.text import ensembles


def stats(name: str, version: str = "1", steps: tuple[str, ...] = ()) -> model.ModelStats:
    return model.ModelStats(server="s", name=name, version=version, ensemble_steps=steps)


def test_steps_follow_their_ensemble_and_are_not_repeated() -> None:
    rows = ensembles.model_tree(
        [stats("resnet"), stats("tok"), stats("pipe", steps=("tok", "bert")), stats("bert"), stats("alpha")]
    )
    assert [(prefix, m.name) for prefix, m in rows] == [
        ("", "alpha"),
        ("", "pipe"),
        ("├ ", "tok"),
        ("└ ", "bert"),
        ("", "resnet"),
    ]


def test_a_step_runs_its_newest_version_and_a_missing_step_is_skipped() -> None:
    rows = ensembles.model_tree([stats("m", "1"), stats("m", "2"), stats("pipe", steps=("m", "gone"))])
    assert [(prefix, m.name, m.version) for prefix, m in rows] == [("", "pipe", "1"), ("└ ", "m", "2")]
