"""Checks on the project's own files: README, CI script, packaging and environments.

These keep the promises made in README.md true: the Quick start commands are the ones CI runs,
and the conda environment installs the same packages as pyproject.toml.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"


def _pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _quick_start_section() -> str:
    """Return the README text between "## Quick start" and the next "## " heading."""
    match = re.search(
        r"^## Quick start[ \t]*\n(.*?)(?=^## |\Z)", README.read_text(), re.MULTILINE | re.DOTALL
    )
    assert match is not None, 'README.md has no "## Quick start" heading'
    return match.group(1)


def _quick_start_commands() -> list[str]:
    section = _quick_start_section()
    blocks = re.findall(r"^```(\w*)[ \t]*\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, f"Quick start should hold exactly one code block, found {len(blocks)}"
    language, body = blocks[0]
    assert language == "bash", f"Quick start block should be ```bash, not ```{language}"
    return [line.strip() for line in body.splitlines() if line.strip()]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match is not None, f"cannot read a package name from {requirement!r}"
    return _normalize(match.group(0))


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_readme_quick_start_has_demo_then_test() -> None:
    commands = _quick_start_commands()
    assert len(commands) == 2, f"Quick start should have two command lines, found {commands}"
    demo, test = commands
    assert not demo.startswith("#") and not test.startswith("#")
    assert "demo" in demo, f"first Quick start command should run the demo, got {demo!r}"
    assert test == "make test", f"second Quick start command should run the tests, got {test!r}"


def test_ci_run_is_executable_and_runs_the_readme_test_command() -> None:
    assert os.access(CI_RUN, os.X_OK), ".ci/run is not executable"
    assert "README.md" in CI_RUN.read_text(), ".ci/run should read its command from README.md"
    result = subprocess.run(
        ["bash", str(CI_RUN), "--dry-run"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f".ci/run: {_quick_start_commands()[1]}"


def test_environment_yml_matches_pyproject() -> None:
    project = _pyproject()["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    declared = {_requirement_name(r) for r in project.get("dependencies", [])}
    declared |= {_requirement_name(r) for reqs in extras.values() for r in reqs}

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_deps = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml should have one pip section"

    python_pins = [d for d in conda_deps if _requirement_name(d) == "python"]
    assert len(python_pins) == 1, "environment.yml should pin python once"
    env_python = re.fullmatch(r"python\s*=+\s*(\d+(?:\.\d+)*)", python_pins[0].strip())
    assert env_python is not None, f"cannot read the python version from {python_pins[0]!r}"
    lower = re.search(r">=\s*(\d+(?:\.\d+)*)", project["requires-python"])
    assert lower is not None, "requires-python should state a lower bound"
    assert _version_tuple(env_python.group(1)) >= _version_tuple(lower.group(1))

    for dep in conda_deps:
        name = _requirement_name(dep)
        assert name in {"python", "pip"} or name in declared, f"conda installs undeclared {dep!r}"

    editable = []
    for entry in pip_sections[0]:
        match = re.fullmatch(r"-e\s+\.(?:\[([\w,\s-]*)\])?", entry.strip())
        if match:
            editable.append(match)
            for extra in filter(None, (e.strip() for e in (match.group(1) or "").split(","))):
                assert extra in extras, f"environment.yml asks for unknown extra [{extra}]"
        else:
            assert _requirement_name(entry) in declared, f"pip installs undeclared {entry!r}"
    assert len(editable) == 1, "environment.yml should install the project once with -e ."


def test_package_ships_py_typed() -> None:
    assert (ROOT / "kato" / "py.typed").is_file()
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["kato"]


def test_one_source_for_the_version_and_a_distribution_name_of_our_own() -> None:
    import kato
    from kato._version import DISTRIBUTION

    pyproject = _pyproject()
    project = pyproject["project"]
    assert "version" not in project and "version" in project["dynamic"]
    source = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert source == "kato._version.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", kato.__version__)
    name = _normalize(project["name"])
    assert name != "kato", "kato on PyPI is an unrelated project"
    assert name == DISTRIBUTION, "the install hints name what pyproject.toml builds"
    dev = {_requirement_name(r) for r in project["optional-dependencies"]["dev"]}
    assert name in dev, "the dev extra installs the lab extra through the distribution's own name"
    assert yaml.safe_load((ROOT / "environment.yml").read_text())["name"] == name


def test_make_test_lints_before_the_suite() -> None:
    makefile = (ROOT / "Makefile").read_text()
    test = re.search(r"^test:(.*)$", makefile, re.MULTILINE)
    lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert test is not None and lint is not None
    assert "lint" in test.group(1).split()
    assert "ruff check" in lint.group(1) and "mypy" in lint.group(1)


def test_make_lab_opens_the_notebooks_and_make_test_installs_the_browser_tests_needs() -> None:
    """``make lab`` is the README's way into the notebooks; ``make test`` sets up what
    tests/browser drives (chromium from apt-get, Playwright from the dev extra)."""
    makefile = (ROOT / "Makefile").read_text()
    lab = re.search(r"^lab:(.*)\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert lab is not None and "venv" in lab.group(1).split()
    assert re.search(r"\$\(BIN\)/jupyter lab .*notebooks/$", lab.group(2), re.MULTILINE)
    test = re.search(r"^test:(.*)$", makefile, re.MULTILINE)
    browser = re.search(r"^browser:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert test is not None and "browser" in test.group(1).split()
    assert browser is not None and "apt_install,chromium,chromium" in browser.group(1)
    dev = _pyproject()["project"]["optional-dependencies"]["dev"]
    assert "playwright" in {_requirement_name(r) for r in dev}
    assert "make lab" in README.read_text()
    assert "make lab" in (ROOT / "notebooks" / "README.md").read_text()
