"""The set-up promises of the README: two commands, CI calls `make test`, the environments agree."""

import re

import yaml

from course_utils import doctor, paths

ROOT = paths.repo_root()


def test_ci_runs_exactly_make_test():
    script = (ROOT / ".ci" / "run").read_text()
    commands = [
        line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")
    ]
    assert "export CI=1" in commands and commands[-1] == "make test"


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
