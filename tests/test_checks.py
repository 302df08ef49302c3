import pytest
import torch

from course_utils import checks


def reference(x, scale=2.0):
    return x * scale


def test_stub_is_not_attempted(capsys):
    def stub(x, scale=2.0):
        raise NotImplementedError

    assert checks.check_function(stub, reference, [torch.ones(2)], name="Exercise 1") is False
    assert "not attempted" in capsys.readouterr().out


def test_correct_answer_passes(capsys):
    cases = [torch.randn(3), (torch.randn(2, 2), 3.0), {"x": torch.randn(4), "scale": -1.0}]
    assert checks.check_function(lambda x, scale=2.0: scale * x, reference, cases, name="Ex")
    assert "correct on all 3" in capsys.readouterr().out


def test_wrong_answer_says_what_and_where():
    with pytest.raises(checks.ExerciseError, match=r"test case 2 of 2.*largest difference") as err:
        checks.check_function(
            lambda x, scale=2.0: x * 2.0,
            reference,
            [(torch.ones(2), 2.0), (torch.ones(2), 3.0)],
            hint="use scale",
        )
    assert "Hint: use scale" in str(err.value)
    with pytest.raises(checks.ExerciseError, match="shape"):
        checks.check_function(lambda x, scale=2.0: x.sum(), reference, [torch.ones(2)])


def test_bool_masks_and_values(capsys):
    mask = torch.tril(torch.ones(3, 3, dtype=torch.bool))
    assert checks.compare(mask, mask) is None
    assert "differ" in checks.compare(~mask, mask)
    assert "dtype" in checks.compare(mask.int(), mask)
    assert checks.check_value(lambda: 48, 48, name="count")
    with pytest.raises(checks.ExerciseError, match="47 but expected 48"):
        checks.check_value(lambda: 47, 48)
    assert checks.compare([1.0, 2.0], (1.0, 2.0 + 1e-9)) is None
    assert checks.check_value(lambda: (_ for _ in ()).throw(NotImplementedError), 1) is False
