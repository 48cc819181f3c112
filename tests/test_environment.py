"""environment.yml and `make setup` install the same packages (issue 26): both come from one source per list
(requirements/torch.txt, pyproject.toml's dependencies and extras, requirements/no-deps.txt); environment.yml is
generated from them by requirements/environment.py and must be what it gives."""
from __future__ import annotations

import difflib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("ctmri_environment_yml", REPO / "requirements" / "environment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _generator()


def _pip_lines(text: str) -> list[str]:
    """The pip section of an environment.yml (the block under `  - pip:`)."""
    lines = text.splitlines()
    start = lines.index("  - pip:") + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("      - "):
            break
        out.append(line[len("      - "):].strip())
    return out


def _setup_recipe() -> list[str]:
    """The `pip install` lines of the Makefile's `$(STAMP)` rule (the one `make setup` runs), comments dropped."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("$(STAMP):"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.split(" #", 1)[0].strip())
    return [line.split("pip install", 1)[1] for line in recipe if "pip install" in line]


def _requirements_of(args: str) -> tuple[list[str], set[str]]:
    """(requirements named on a pip command line, its flags); `-r FILE` is read."""
    words, reqs, flags = shlex.split(args), [], set()
    i = 0
    while i < len(words):
        w = words[i]
        if w in ("-r", "--requirement"):
            reqs += gen.read_requirements(REPO / words[i + 1])
            i += 1
        elif w in ("-e", "--editable"):
            reqs.append(f"-e {words[i + 1]}")
            i += 1
        elif w.startswith("-"):
            flags.add(w)
        else:
            reqs.append(w)
        i += 1
    return reqs, flags


def test_environment_yml_is_what_the_package_lists_give() -> None:
    """Regenerate and compare: a hand edit of environment.yml, or a list changed without regenerating, fails here."""
    committed, generated = (REPO / "environment.yml").read_text(), gen.render()
    diff = "".join(difflib.unified_diff(committed.splitlines(True), generated.splitlines(True), "committed", "generated"))
    assert committed == generated, f"environment.yml is stale: run `python requirements/environment.py`\n{diff}"


def test_the_pip_section_holds_every_list_but_the_no_deps_one() -> None:
    pip = _pip_lines((REPO / "environment.yml").read_text())
    torch_pin = gen.read_requirements(gen.TORCH)
    assert pip[:len(torch_pin)] == torch_pin                           # the pin first, as `make setup` installs it
    assert pip[-1] == "-e .[dev,dose]"
    names = {gen.canonical(r) for r in pip[:-1]}
    assert len(names) == len(pip) - 1, "a distribution listed twice"
    project = {gen.canonical(r) for r in gen.project_requirements()}
    assert names == project | {gen.canonical(r) for r in torch_pin}
    for needed in ("simpleitk", "nbval", "pydantic", "h5py", "pytest"):  # the issue: dose packages, SimpleITK missed
        assert needed in names
    no_deps = {gen.canonical(r) for r in gen.read_requirements(gen.NO_DEPS)}
    assert no_deps == {"pyradplan", "pymedphys"} and not no_deps & names   # never with their declared dependencies
    header = (REPO / "environment.yml").read_text().split("name:", 1)[0]
    assert "pip install --no-deps -r requirements/no-deps.txt" in header


def test_make_setup_installs_the_same_lists_in_the_same_order() -> None:
    """The Makefile's setup recipe (its own file): torch pin, then the project with the same extras, then the no-deps
    packages with --no-deps; read from requirements/*.txt (`-r`) or, until it does, naming exactly their pins."""
    steps = [_requirements_of(args) for args in _setup_recipe()]
    steps = [(reqs, flags) for reqs, flags in steps if reqs != ["pip"]]        # `--upgrade pip`
    assert len(steps) == 3, steps
    (torch_reqs, _), (project, _), (no_deps, no_deps_flags) = steps
    assert torch_reqs == gen.read_requirements(gen.TORCH)
    extras = re.fullmatch(r"-e \.\[([\w,]+)\]", project[0]) if len(project) == 1 else None
    assert extras and tuple(extras.group(1).split(",")) == gen.EXTRAS, project
    assert "--no-deps" in no_deps_flags and no_deps == gen.read_requirements(gen.NO_DEPS)
    rule = next(line for line in (REPO / "Makefile").read_text().splitlines() if line.startswith("$(STAMP):"))
    read = [w for args in _setup_recipe() for w in re.findall(r"-r\s+(\S+)", args)]
    assert all(f in rule.split() for f in read), f"`make setup` reads {read}: each must be a prerequisite of {rule!r}"


def test_the_generator_refuses_an_extra_pyproject_lacks(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["numpy"]\n'
                                             '[project.optional-dependencies]\ndev = ["pytest"]\n')
    assert gen.project_requirements(tmp_path / "pyproject.toml", ("dev",)) == ["numpy", "pytest"]
    with pytest.raises(KeyError, match="dose"):
        gen.project_requirements(tmp_path / "pyproject.toml", ("dev", "dose"))


_OFFLINE = re.compile(r"NewConnectionError|Network is unreachable|Temporary failure in name resolution|"
                      r"Failed to establish a new connection|ConnectTimeout|ProxyError", re.I)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_pip_section_and_the_no_deps_list_resolve_in_a_fresh_venv(tmp_path: Path) -> None:
    """What conda's pip step would do (`pip install -r <the pip section>` from the repository root), as a dry run in
    an empty venv, then the no-deps list: every pin exists and the lists resolve together (35 s here, with the
    machine's package index). Skips when no package index can be reached."""
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    pip = [str(tmp_path / "venv" / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--retries", "1",
           "--timeout", "20"]                                          # offline: fail (and skip) in seconds
    section = tmp_path / "pip-section.txt"
    section.write_text("\n".join(_pip_lines((REPO / "environment.yml").read_text())) + "\n")
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    for args in (["-r", str(section)], ["--no-deps", "-r", str(gen.NO_DEPS)]):
        proc = subprocess.run([*pip, "install", "--dry-run", "--ignore-installed", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=540)
        if proc.returncode and _OFFLINE.search(proc.stdout + proc.stderr):
            pytest.skip("no package index reachable: " + _OFFLINE.search(proc.stdout + proc.stderr).group(0))
        assert proc.returncode == 0, f"pip install --dry-run {' '.join(args)}:\n{proc.stderr[-3000:]}"
        would = proc.stdout.rsplit("Would install", 1)[-1]
        for req in gen.read_requirements(gen.TORCH if "--no-deps" not in args else gen.NO_DEPS):
            name, version = req.split("==")
            assert re.search(rf"(?i)\b{re.escape(name)}-{re.escape(version)}\b", would), (req, would[-2000:])
