import subprocess
import sys

from course_utils import doctor


def test_all_ok_or_warn_exits_zero_and_names_the_track(clean_env):
    checks = [
        doctor.Check(doctor.OK, "Python 3.11"),
        doctor.Check(doctor.WARN, "GPU", "none", "use InternStudio"),
    ]
    lines = []
    assert doctor.report(checks, out=lines.append) == 0
    assert lines[0].startswith("[OK]") and lines[1].startswith("[WARN]")
    assert "fix: use InternStudio" in lines[2]
    assert "Track that will run: MINI" in lines[-1]


def test_any_fail_exits_nonzero_with_a_fix_line(clean_env):
    checks = [doctor.Check(doctor.FAIL, "packages", "missing torch", "run `make lab`")]
    lines = []
    assert doctor.report(checks, out=lines.append) == 1
    assert lines == ["[FAIL] packages: missing torch", "       fix: run `make lab`", lines[-1]]
    assert "problem(s) to fix" in lines[-1]


def test_package_check_against_pins(monkeypatch):
    monkeypatch.setattr(doctor, "core_requirements", lambda: {"torch", "definitely-not-a-package"})
    result = doctor.check_packages({"torch": "0.0.1", "pytest-not-installed-xyz": "1.0"})
    by_status = {c.status: c for c in result}
    assert "definitely-not-a-package" in by_status["FAIL"].detail
    assert "pytest-not-installed-xyz" in by_status["WARN"].detail or any(
        "pytest-not-installed-xyz" in c.detail for c in result if c.status == "WARN"
    )
    assert any("torch" in c.detail and "tested 0.0.1" in c.detail for c in result)


def test_environment_yml_pins_are_parsed_and_installed():
    pins = doctor.pinned_packages()
    assert pins["transformers"].startswith("5.") and "torch" in pins
    assert doctor.core_requirements() >= {"torch", "transformers", "tokenizers"}
    assert not [c for c in doctor.check_packages() if c.status == doctor.FAIL]


def test_missing_assets_are_warnings_not_failures(clean_env, monkeypatch):
    monkeypatch.setattr(doctor.env, "cuda_info", lambda: None)
    checks = doctor.run_checks()
    labels = {c.label: c.status for c in checks}
    assert labels["model weights"] == "WARN" and labels["FoodieQA"] == "WARN" and labels["GPU"] == "WARN"
    assert doctor.report(checks, out=lambda _: None) == 0


def test_disk_thresholds(monkeypatch, tmp_path):
    class Usage:
        def __init__(self, free):
            self.free = free

    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda _: Usage(0.1 * 2**30))
    assert doctor.check_disk(tmp_path / "nope" / "deeper").status == doctor.FAIL
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda _: Usage(3 * 2**30))
    assert doctor.check_disk(tmp_path).status == doctor.WARN
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda _: Usage(50 * 2**30))
    assert doctor.check_disk(tmp_path).status == doctor.OK


def test_lab_kernels_only_warn_with_a_gpu():
    assert [c.status for c in doctor.check_kernels(set(), gpu=False)] == ["WARN"]
    assert [c.status for c in doctor.check_kernels({"mllm-course", "mllm-course-lmdeploy"}, gpu=True)] == [
        "OK",
        "OK",
    ]
    with_gpu = doctor.check_kernels({"mllm-course"}, gpu=True)
    assert [c.status for c in with_gpu] == ["OK", "WARN"] and "envs/lmdeploy.yml" in with_gpu[-1].fix


def test_lab_environments_only_warn_with_a_gpu(clean_env, no_conda, monkeypatch, tmp_path, fake_env):
    assert doctor.check_lab_envs(gpu=False) == []
    missing = doctor.check_lab_envs(gpu=True)
    assert [c.status for c in missing] == ["WARN", "WARN"] and "envs/xtuner.yml" in missing[-1].fix
    monkeypatch.setenv("MLLM_COURSE_XTUNER_ENV", str(fake_env(tmp_path / "xt")))
    monkeypatch.setattr(doctor, "env_torch_cuda", lambda python: "12.1")
    checks = doctor.check_lab_envs(gpu=True, driver=(12, 2))
    assert [(c.label, c.status) for c in checks] == [("lab environment", "WARN"), ("lab environment", "OK"),
                                                     ("xtuner launcher", "WARN"), ("xtuner torch", "OK")]  # fmt: skip


def test_torch_cuda_build_against_the_driver():
    """pip's default torch for lmdeploy's range was a CUDA 13 build: it cannot start on InternStudio's CUDA 12.2."""
    too_new = doctor.check_torch_cuda("lmdeploy", "13.0", (12, 2))
    assert (
        too_new.status == "WARN" and "newer driver" in too_new.detail and "envs/lmdeploy.yml" in too_new.fix
    )
    assert "minor-version" in doctor.check_torch_cuda("lmdeploy", "12.8", (12, 2)).detail
    assert doctor.check_torch_cuda("xtuner", "12.1", (12, 2)).status == "OK"
    assert doctor.check_torch_cuda("xtuner", "", (12, 2)).status == "WARN"  # a CPU build
    assert doctor.check_torch_cuda("xtuner", None, (12, 2)).status == "FAIL"  # torch does not import


def test_driver_cuda_reads_nvidia_smi(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho '| NVIDIA-SMI 535.54.03   Driver Version: 535.54.03   CUDA Version: 12.2     |'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert doctor.driver_cuda() == (12, 2)


def test_env_torch_cuda_runs_the_environments_python(tmp_path):
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 12.8\n")
    python.chmod(0o755)
    assert doctor.env_torch_cuda(python) == "12.8"


def test_xtuner_launcher_check_names_the_python_path_would_pick(tmp_path, fake_env):
    """`xtuner train` runs `python` from PATH (xtuner/entry_point.py): only the environment's own one is safe."""
    env_dir = fake_env(tmp_path / "xt")
    assert doctor.check_xtuner_launcher(env_dir, path=str(env_dir / "bin")).status == "OK"
    other = fake_env(tmp_path / "other")
    wrong = doctor.check_xtuner_launcher(env_dir, path=str(other / "bin"))
    assert (
        wrong.status == "WARN"
        and str(other / "bin" / "python") in wrong.detail
        and "xtuner.tools.train" in wrong.fix
    )


def test_cli_exits_zero_on_a_cpu_machine(clean_env):
    proc = subprocess.run(
        [sys.executable, "-m", "course_utils.doctor"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[FAIL]" not in proc.stdout
    assert "Track that will run: MINI" in proc.stdout


def test_labs_run_says_what_is_missing_and_reports_a_broken_environment(
    clean_env, no_conda, monkeypatch, tmp_path, fake_env
):
    missing = doctor.run_labs(gpu=True)
    assert [(c.label, c.status) for c in missing] == [("XTuner lab", "WARN"), ("LMDeploy lab", "WARN")]
    assert "envs/xtuner.yml" in missing[0].fix and "envs/lmdeploy.yml" in missing[1].fix
    monkeypatch.setenv("MLLM_COURSE_XTUNER_ENV", str(fake_env(tmp_path / "xt")))
    monkeypatch.setenv("MLLM_COURSE_LMDEPLOY_ENV", str(fake_env(tmp_path / "lmd")))
    broken, not_run = doctor.run_labs(gpu=False)  # this kernel has no xtuner: a broken XTuner environment
    assert broken.status == "FAIL" and "xtuner" in broken.detail and "envs/xtuner.yml" in broken.fix
    assert not_run.status == "WARN" and "no CUDA GPU" in not_run.detail


def test_labs_run_asks_the_model_through_the_evaluate_command(clean_env, no_conda, monkeypatch, tmp_path):
    """The LMDeploy environment stood in by this kernel's python with --backend lmdeploy swapped for mini, and a saved
    mini InternVL as the model: checks the orchestration, not LMDeploy (make test-full-stack and a GPU do that)."""
    from course_utils.mini import build_internvl, save_atomic

    save_atomic(*build_internvl(image_size=96, patch_size=8, vision_hidden=32, hidden=64, layers=1, max_tiles=1),
                tmp_path / "model")  # fmt: skip
    monkeypatch.setenv("MLLM_COURSE_MODEL_DIR", str(tmp_path / "model"))
    (tmp_path / "lmd" / "bin").mkdir(parents=True)
    fake = tmp_path / "lmd" / "bin" / "python"
    fake.write_text(
        f'#!/bin/sh\nfor a; do shift; [ "$a" = lmdeploy ] && a=mini; set -- "$@" "$a"; done\nexec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("MLLM_COURSE_LMDEPLOY_ENV", str(tmp_path / "lmd"))
    (check,) = [c for c in doctor.run_labs(gpu=True) if c.label == "LMDeploy lab"]
    assert check.status == "OK" and "InternVL2-2B answered '图中的菜是什么？'" in check.detail, check


def test_doctor_names_each_labs_track_and_why(clean_env, monkeypatch, tmp_path):
    """The four machines of the labs: no weights; weights, no GPU; weights and a GPU without LMDeploy; full."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent / "rehearsal"))
    import laptop

    def verdict(weights: bool, gpu: bool, lmdeploy: bool) -> list[str]:
        folder = laptop.write_native(tmp_path / "InternVL-tiny-hf") if weights else tmp_path / "none"
        monkeypatch.setenv("MLLM_COURSE_MODEL_DIR", str(folder))
        monkeypatch.setattr(doctor.env, "cuda_info", lambda: ("stand-in GPU", 40.0) if gpu else None)
        monkeypatch.setattr(doctor.env, "lmdeploy_problem", lambda nb="": None if lmdeploy else "no LMDeploy")
        lines = []
        doctor.report(
            [doctor.Check(doctor.OK, "Python"), doctor.check_model(available=10**12)], out=lines.append
        )
        return lines

    lines = verdict(False, False, False)
    assert "model weights: not found" in lines[1] and "08 runs on the MINI track" in "\n".join(lines)
    lines = verdict(True, False, False)
    assert "native format" in lines[1] and "bfloat16" in lines[1]
    assert "07 runs on the TRANSFORMERS track (auto: no CUDA GPU" in "\n".join(lines)
    assert "MINI for 01-06" in lines[-1]
    lines = verdict(True, True, False)
    assert "09 runs on the TRANSFORMERS track (auto: no LMDeploy" in "\n".join(lines)
    monkeypatch.setenv("MLLM_COURSE_FOODIEQA_DIR", str(tmp_path / "none"))
    lines = verdict(True, True, True)
    assert "07 runs on the FULL track" in "\n".join(
        lines
    ) and "08 runs on the TRANSFORMERS track" in "\n".join(lines)


def test_model_that_does_not_fit_is_a_warning_with_the_numbers(clean_env, monkeypatch, tmp_path):
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent / "rehearsal"))
    import laptop

    folder = laptop.write_native(tmp_path / "InternVL-tiny-hf")
    monkeypatch.setattr(doctor.env, "cuda_info", lambda: None)
    check = doctor.check_model(folder, available=10**6)
    assert check.status == doctor.WARN and "GB" in check.detail and "InternVL2-1B" in check.fix


def test_course_kernel_torch_against_the_driver():
    """InternStudio: PyPI's torch 2.13 (CUDA 13) in the course kernel on a CUDA 12.2 driver runs on the CPU."""
    assert doctor.check_kernel_torch("13.0", None) is None  # no NVIDIA driver: nothing to compare
    mismatch = doctor.check_kernel_torch("13.0", (12, 2))
    assert mismatch.status == "WARN" and "cu126" in mismatch.fix and "lab environments" in mismatch.detail
    assert doctor.check_kernel_torch("12.6", (12, 2)).status == "OK"
    assert doctor.check_kernel_torch("", (12, 2)).status == "WARN"  # a CPU build on a GPU machine


def test_lab_environments_are_checked_where_only_nvidia_smi_sees_the_gpu(
    clean_env, no_conda, monkeypatch, tmp_path, fake_env
):
    """The course kernel's torch cannot see the GPU (gpu unknown), but the driver is there: the lab environments'
    builds are compared with it (they used to be skipped)."""
    monkeypatch.setattr(doctor.env, "cuda_info", lambda: None)
    monkeypatch.setenv("MLLM_COURSE_LMDEPLOY_ENV", str(fake_env(tmp_path / "lm")))
    monkeypatch.setattr(doctor, "env_torch_cuda", lambda python: "12.8")
    checks = doctor.check_lab_envs(driver=(12, 2))
    assert ("lmdeploy torch", "OK") in [(c.label, c.status) for c in checks], checks


def test_build_problem_follows_minor_version_compatibility():
    from course_utils import cuda_builds

    assert (
        cuda_builds.build_problem("12.8", (12, 2)) is None
        and cuda_builds.build_problem("12.1", (13, 0)) is None
    )
    assert "driver supports CUDA 12.2" in cuda_builds.build_problem("13.0", (12, 2))
    assert "CPU-only" in cuda_builds.build_problem("", (12, 2)) and "import" in cuda_builds.build_problem(
        None, (12, 2)
    )
    assert "nvidia-smi" in cuda_builds.build_problem("12.8", None)


def test_driver_gpu_reads_nvidia_smi(tmp_path, monkeypatch):
    from course_utils import cuda_builds

    smi = tmp_path / "nvidia-smi"
    smi.write_text('#!/bin/sh\necho "NVIDIA A100-SXM4-80GB, 81920"\n')
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cuda_builds.driver_gpu() == ("NVIDIA A100-SXM4-80GB", 80.0)
