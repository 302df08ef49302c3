"""The set-up promises of the README: two commands, CI calls `make test`, the environments agree."""

import importlib.util
import re

import yaml

from course_utils import doctor, paths

ROOT = paths.repo_root()


def test_ci_runs_make_test_then_the_learner_sizes_and_the_site():
    """CI calls the README's test command, then the trained notebooks under torch's AVX2 kernels, then the
    learner-size run that builds the website, then the website's browser test, whose pytest summary line ends the
    output."""
    script = (ROOT / ".ci" / "run").read_text()
    commands = [
        line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")
    ]
    assert "export CI=1" in commands and commands[-4:] == [
        "make test",
        "make test-kernel",
        "make site",
        "make site-check",
    ]
    make = (ROOT / "Makefile").read_text()
    assert "-m course_utils.site build" in make[make.index("\nsite:") :].split("\n\n")[0]
    assert "MLLM_COURSE_SITE=_build/site/html" in make[make.index("\nsite-check:") :].split("\n\n")[0]
    recipe = make[make.index("\ntest-kernel:") :].split("\n\n")[0]
    assert (
        "ATEN_CPU_CAPABILITY=$$kernel" in recipe
        and "cpu_kernels.py second" in recipe
        and "MLLM_COURSE_CACHE=$$tmp/cache" in recipe
    )
    assert "08_xtuner_finetune" in make[make.index("TRAINED_NOTEBOOKS :=") :].splitlines()[0]
    recipe = make[make.index("\ntest-learner:") :].split("\n\n")[0]
    assert (
        "-u CI" in recipe and "-u COURSE_SMOKE" in recipe and "COURSE_THREADS=2" in recipe
    )  # a learner's sizes
    assert "MLLM_COURSE_CACHE=$$tmp/cache" in recipe  # a cold cache of its own


def test_readme_quick_start_has_the_two_commands():
    for name in ("README.md", "README_zh-CN.md"):
        text = (ROOT / name).read_text(encoding="utf-8")
        assert "make lab" in text and "make test" in text, name
        assert text.index("make lab") < 2500, f"{name}: the quick start should come first"


def test_makefile_installs_cpu_torch_first_and_no_torchvision():
    make = (ROOT / "Makefile").read_text()
    torch_at = make.index('pip install "torch==$(TORCH_VERSION)"')
    assert torch_at < make.index('-e ".[dev]"')
    assert "pip install torchvision" not in make and "torchvision==" not in make
    assert "--nbval-lax --nbval-current-env" in make and "ipykernel install --user --name mllm-course" in make


def test_makefile_installs_the_pins_with_uv_and_falls_back_to_pip():
    """uv when it is on PATH or installs from PyPI (about 3x faster on a cold cache), pip otherwise or when uv fails:
    both with environment.yml's pins as constraints, both after torch, and torch is not swapped on the way."""
    make = (ROOT / "Makefile").read_text()
    recipe = make[make.index("$(STAMP): pyproject.toml environment.yml") :].split("\n\n")[0]
    uv_at = recipe.index('$$uv pip install --python $(PY) -c $(VENV)/constraints.txt -e ".[dev]"')
    assert recipe.index('pip install "torch==$(TORCH_VERSION)"') < uv_at
    assert 'pip install -q "uv==$(UV_VERSION)"' in recipe and "command -v uv" in recipe
    assert (
        recipe.count('$(PY) -m pip install -c $(VENV)/constraints.txt -e ".[dev]"') == 2
    )  # no uv; uv failed
    assert "torch-build.txt" in recipe and "was replaced by" in recipe


def test_environment_yml_pins_every_requirement_of_the_package():
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert spec["name"] == "mllm-course"
    pins = doctor.pinned_packages()
    assert doctor.core_requirements() <= set(pins), "pin every course dependency in environment.yml"
    assert "torchvision" not in pins


def test_lab_environments_exist_with_their_pins():
    lmdeploy = (ROOT / "envs" / "lmdeploy.yml").read_text()
    xtuner = (ROOT / "envs" / "xtuner.yml").read_text()
    assert re.search(r"lmdeploy==0\.18\.0", lmdeploy) and "name: mllm-course-lmdeploy" in lmdeploy
    assert re.search(r"xtuner\[deepspeed\]==0\.2\.0", xtuner) and "transformers==4.48.0" in xtuner


TORCHVISION_FOR = {
    "2.5": "0.20",
    "2.12": "0.27",
}  # PyTorch's release pairs (torchvision 0.N ships with torch 2.N-15)


def _pip_lines(name):
    spec = yaml.safe_load((ROOT / "envs" / f"{name}.yml").read_text())
    return next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))


def test_lab_environments_pin_cuda_12_torch_builds_with_their_index():
    """PyPI's plain torch is a CUDA 13 build, which needs a newer driver than InternStudio's CUDA 12.2 one (and than
    lmdeploy 0.18's CUDA 12 wheel): each lab pins a +cu12x build and the PyTorch index that serves it."""
    for name in ("lmdeploy", "xtuner"):
        lines = _pip_lines(name)
        torch = next(
            re.fullmatch(r"torch==(\d+\.\d+)\.\d+\+(cu12\d)", x) for x in lines if x.startswith("torch==")
        )
        assert torch, f"envs/{name}.yml: pin torch==X.Y.Z+cu12x"
        version, tag = torch.groups()
        assert f"--extra-index-url https://download.pytorch.org/whl/{tag}" in lines, name
        vision = [x for x in lines if x.startswith("torchvision==")]
        assert vision and re.fullmatch(rf"torchvision=={TORCHVISION_FOR[version]}\.\d+\+{tag}", vision[0]), (
            name
        )
    lmdeploy = _pip_lines("lmdeploy")  # lmdeploy 0.18.0 requires torch <= 2.12.1, torchvision <= 0.27.1
    assert "torch==2.12.1+cu128" in lmdeploy and "torchvision==0.27.1+cu128" in lmdeploy


def test_full_stack_check_installs_the_pins_it_can_and_deepspeed():
    make = (ROOT / "Makefile").read_text()
    recipe = make[make.index("test-full-stack:") :]
    assert recipe.count("s/+cu[0-9]*$$//") == 2, "the CPU check drops the +cuXXX tags of both environments"
    assert "pip install --no-build-isolation" in recipe and "deepspeed==" in recipe


def test_readme_torchvision_advice_stays_out_of_the_lmdeploy_environment():
    for name in ("README.md", "README_zh-CN.md"):
        text = (ROOT / name).read_text(encoding="utf-8")
        for line in text.splitlines():
            if "uninstall" in line and "torchvision" in line:
                assert "lmdeploy" in line.lower() or "LMDeploy" in line, f"{name}: {line}"


def test_ci_checks_both_lab_stacks_one_at_a_time():
    """Each lab venv is 6.5-8.3 GB: CI removes one once it is checked, before installing the other."""
    make = (ROOT / "Makefile").read_text()
    assert "test-full-stack: test-full-stack-lmdeploy test-full-stack-xtuner" in make
    ci = (ROOT / ".ci" / "run").read_text().splitlines()

    def line_of(text):
        return next(i for i, line in enumerate(ci) if line == text or line.endswith(f"&& {text}"))

    steps = ["make test-full-stack-lmdeploy", "rm -rf .venv-lmdeploy", "make test-full-stack-xtuner"]
    steps += ["rm -rf .venv-xtuner", "make test"]
    assert [line_of(step) for step in steps] == sorted(line_of(step) for step in steps)


def test_full_stack_disk_check_says_what_to_do(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "disk_space", ROOT / "tests" / "full_stack" / "disk_space.py"
    )
    disk_space = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(disk_space)
    venv = str(tmp_path / ".venv-lmdeploy")
    assert disk_space.main(["disk_space.py", "0", venv]) == 0
    assert disk_space.main(["disk_space.py", "1e9", venv]) == 1
    message = capsys.readouterr().err
    assert "needs about 1e+09 GB of free disk space" in message and "FULL_STACK_GB" in message
