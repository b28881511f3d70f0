"""Standalone generation over a real (tiny, randomly initialised) diffusers pipeline.

The demo model (demo_model.py) is built once per session; images are 64x64 with 4 steps, about a
tenth of a second each. LoRAs are real kohya/diffusers files written by synth.py and the demo
library, loaded through diffusers' PEFT integration.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="standalone generation needs torch (install.py --standalone)")
pytest.importorskip("diffusers", reason="standalone generation needs diffusers (install.py --standalone)")

from PIL import Image  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from lib_lora_manager import demo, demo_model, synth  # noqa: E402
from lib_lora_manager.errors import InvalidInput, NotFound  # noqa: E402
from lib_lora_manager.generation import GenerationRequest, Progress  # noqa: E402
from lib_lora_manager.history import GenerationRecord  # noqa: E402
from lib_lora_manager.hosts.diffusion import DiffusersGenerator, _native_size, _OtherAdaptersReport  # noqa: E402
from lib_lora_manager.lora_info import extract  # noqa: E402
from lib_lora_manager.prompts import parse_infotext  # noqa: E402
from lib_lora_manager.safetensors_header import read_header  # noqa: E402
from lib_lora_manager.statuses import GenerationStatus  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from a second thread, and torch's spinning worker threads
    slow it down tenfold when other processes share the two cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def model(tmp_path_factory) -> str:
    return demo_model.build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "model")


@pytest.fixture(scope="session")
def loras(tmp_path_factory) -> dict[str, str]:
    """name -> file: tiny kohya LoRAs (real SD1.5 key names, demo-model widths) and problem files."""
    root = tmp_path_factory.mktemp("loras")
    files = {
        "style": synth.write_lora(root / "style.safetensors", "sd1", rank=4, tiny=True, data="random", seed=1),
        "other": synth.write_lora(root / "other.safetensors", "sd1", rank=4, tiny=True, data="random", seed=2),
        "unet_only": synth.write_lora(root / "unet_only.safetensors", "sd1", rank=4, tiny=True, data="random",
                                      seed=3, text_encoder=False),
        "real_sd15": synth.write_lora(root / "real_sd15.safetensors", "sd1", rank=4, compact=True, data="random"),
        "corrupt": synth.write_hostile(root / "corrupt.safetensors", "truncated"),
        "pickle": synth.write_pickle_placeholder(root / "pickle.pt"),
    }
    style = load_file(files["style"])
    # the transformers-4-era diffusers layout: text_encoder.text_model.encoder.layers.N...
    te = {_diffusers_te_key(k): v for k, v in style.items() if k.startswith("lora_te_") and not k.endswith(".alpha")}
    files["diffusers_te"] = root / "diffusers_te.safetensors"
    save_file(te, str(files["diffusers_te"]))
    # PEFT keys without the "unet." prefix: diffusers "loads" it and nothing happens
    files["no_prefix"] = root / "no_prefix.safetensors"
    save_file({"down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.zeros(4, 32)}, str(files["no_prefix"]))
    return {name: str(path) for name, path in files.items()}


def _diffusers_te_key(key: str) -> str:
    module, _, kind = key.partition(".")
    module = module.removeprefix("lora_te_text_model_encoder_layers_")
    layer, _, rest = module.partition("_")
    rest = rest.replace("self_attn_", "self_attn.").replace("mlp_", "mlp.")
    part = {"lora_down.weight": "lora_A.weight", "lora_up.weight": "lora_B.weight"}[kind]
    return f"text_encoder.text_model.encoder.layers.{layer}.{rest}.{part}"


def resolver(files: dict[str, str]):
    def resolve(name: str) -> str:
        if name not in files:
            raise NotFound(f"No LoRA called {name!r} in the library.")
        return files[name]
    return resolve


@pytest.fixture(scope="module")
def records() -> list[GenerationRecord]:
    return []


@pytest.fixture(scope="module")
def generator(model, loras, records, tmp_path_factory) -> DiffusersGenerator:
    return DiffusersGenerator(model, str(tmp_path_factory.mktemp("outputs")), resolve_lora=resolver(loras),
                              record=records.append)


def request(prompt: str = "a red cat", **kw) -> GenerationRequest:
    kw = {"seed": 7, "steps": 4, "width": 64, "height": 64, **kw}
    return GenerationRequest(prompt=prompt, **kw)


def run(generator: DiffusersGenerator, prompt: str = "a red cat", progress=None, **kw):
    outcome = generator.generate(request(prompt, **kw), progress or (lambda _p: None))
    return outcome


def pixels(outcome, index: int = 0) -> np.ndarray:
    with Image.open(outcome.images[index].path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255


def delta(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


# --- the demo model --------------------------------------------------------------------------------


def test_demo_model_is_built_once_and_known_without_loading(model, loras, tmp_path):
    folder = Path(model)
    assert demo_model.is_built(folder)
    before = (folder / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert demo_model.build_tiny_pipeline(folder) == model
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == before
    fresh = DiffusersGenerator(model, str(tmp_path), resolve_lora=resolver(loras))
    assert (fresh.model_family(), fresh.model_name()) == ("sd1", demo_model.MODEL_NAME)
    assert fresh._pipe is None  # the family came from the configs
    assert {"Euler", "Euler a", "DPM++ 2M", "DDIM", "UniPC", "Heun", "PNDM"} <= set(fresh.samplers())


def test_demo_model_is_not_built_over_other_files(tmp_path):
    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(InvalidInput, match="not empty and not the demo model"):
        demo_model.build_tiny_pipeline(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "user data"


def test_every_module_of_a_tiny_lora_finds_its_layer(model, loras, tmp_path):
    from peft.tuners.lora import LoraLayer

    generator = DiffusersGenerator(model, str(tmp_path), resolve_lora=resolver(loras))
    assert run(generator, "a red cat <lora:style:1>").message == ""
    pipe = generator._pipe
    layers = [m for part in (pipe.unet, pipe.text_encoder) for m in part.modules() if isinstance(m, LoraLayer)]
    modules = {key.split(".")[0] for key in load_file(loras["style"])}
    assert len(layers) == len(modules) == len(synth.kohya_keys("sd1", 4, tiny=True)) // 3
    assert any(m.startswith("lora_te_text_model_encoder_layers_1_mlp_fc2") for m in modules)


def test_same_seed_same_image_and_seeds_count_up(generator):
    first, again = run(generator), run(generator)
    assert first.status == GenerationStatus.SUCCEEDED and first.message == ""
    assert delta(pixels(first), pixels(again)) == 0
    assert delta(pixels(first), pixels(run(generator, seed=8))) > 0.01
    batch = run(generator, seed=20, batch_size=2, n_iter=2)
    assert [i.seed for i in batch.images] == [20, 21, 22, 23]
    # image 4 of a batched run is the image its seed makes alone (SDNext's seed + index), up to
    # float rounding in batched matrix products
    assert delta(pixels(batch, 3), pixels(run(generator, seed=23))) < 0.003
    with Image.open(batch.images[0].path) as image:
        assert image.size == (64, 64)


def test_random_seed(generator):
    outcome = run(generator, seed=-1, batch_size=2)
    seeds = [i.seed for i in outcome.images]
    assert seeds[0] >= 0 and seeds[1] == seeds[0] + 1


# --- LoRAs -----------------------------------------------------------------------------------------


def test_lora_weight_changes_the_picture(generator):
    base = pixels(run(generator))
    one = pixels(run(generator, "a red cat <lora:style:1>"))
    half = pixels(run(generator, "a red cat <lora:style:0.5>"))
    zero = run(generator, "a red cat <lora:style:0>")
    assert delta(one, base) > 0.03 and delta(half, base) > 0.01 and delta(one, half) > 0.01
    assert delta(pixels(zero), base) == 0 and zero.message == ""
    assert delta(pixels(run(generator)), base) == 0  # no token: the LoRA is off again


def test_text_encoder_and_unet_weights_are_separate(generator):
    base = pixels(run(generator))
    te_only = pixels(run(generator, "a red cat <lora:style:te=1:unet=0>"))
    unet_only = pixels(run(generator, "a red cat <lora:style:te=0:unet=1>"))
    both = pixels(run(generator, "a red cat <lora:style:te=1:unet=1>"))
    # the kohya file's lora_te_text_model_* keys really reached the text encoder
    assert delta(te_only, base) > 0.01 and delta(both, unet_only) > 0.01
    assert delta(both, pixels(run(generator, "a red cat <lora:style:1>"))) == 0


def test_text_model_keys_in_diffusers_layout_load(generator):
    outcome = run(generator, "a red cat <lora:diffusers_te:1>")
    assert outcome.message == "" and delta(pixels(outcome), pixels(run(generator))) > 0.005


def test_two_loras_and_one_without_text_encoder(generator):
    style = pixels(run(generator, "a red cat <lora:style:1>"))
    both = run(generator, "a red cat <lora:style:1> <lora:unet_only:0.8>")
    assert both.message == "" and delta(pixels(both), style) > 0.01
    assert "LoRA networks: \"style, unet_only\"" in both.images[0].infotext


def test_unknown_and_unloadable_loras_are_reported_and_skipped(generator):
    base = pixels(run(generator))
    outcome = run(generator, "a red cat <lora:missing:1> <lora:corrupt:1> <lora:real_sd15:1> <lora:no_prefix:1> "
                             "<lora:pickle:1>")
    assert outcome.status == GenerationStatus.SUCCEEDED and len(outcome.images) == 1
    assert delta(pixels(outcome), base) == 0
    message = outcome.message
    assert "'missing' was not used: No LoRA called 'missing'" in message
    assert "'corrupt' could not be loaded: not a valid safetensors file" in message
    assert "'real_sd15' could not be loaded: its layer sizes do not fit this model" in message
    assert "'no_prefix' could not be loaded: no layer of this model matched" in message
    assert "'pickle' could not be loaded" in message
    assert "Traceback" not in message and len(message) < 2000
    again = run(generator, "a red cat <lora:real_sd15:1>")  # a failed file is not retried until it changes
    assert "'real_sd15' could not be loaded: its layer sizes do not fit this model" in again.message
    good = run(generator, "a red cat <lora:style:1> <lora:missing:1>")  # the rest still applies
    assert delta(pixels(good), pixels(run(generator, "a red cat <lora:style:1>"))) == 0
    assert "LoRA networks: style," in good.images[0].infotext


def test_lora_loads_log_one_true_line_each_and_no_missing_table(model, loras, tmp_path, caplog, capfd):
    """transformers 5 prints a LOAD REPORT table of "MISSING" weights from the second LoRA on
    (the earlier adapters' weights, which it expects too): not shown. Our own line says what
    each LoRA applies to, and a LoRA that fails still says so."""
    caplog.set_level(logging.INFO, logger="lora_manager")
    fresh = DiffusersGenerator(model, str(tmp_path / "out"), resolve_lora=resolver(loras))
    for prompt in ("a red cat <lora:style:1>", "a red cat <lora:other:1>", "a red cat <lora:style:1> <lora:unet_only:1>"):
        assert run(fresh, prompt).message == ""
    printed = "".join(capfd.readouterr())
    assert "LOAD REPORT" not in printed and "MISSING" not in printed
    assert "No LoRA keys associated to CLIPTextModel" not in printed + caplog.text  # unet_only has none: as meant
    lines = [r.getMessage() for r in caplog.records if r.name == "lora_manager"]
    text_layers = len([k for k in synth.kohya_keys("sd1", 4, tiny=True) if k[0].startswith("lora_te_")]) // 3
    unet_layers = len(synth.kohya_keys("sd1", 4, tiny=True)) // 3 - text_layers
    assert f"LoRA Manager: LoRA style.safetensors applies to {unet_layers} unet layers, {text_layers} text_encoder layers" in lines
    assert f"LoRA Manager: LoRA unet_only.safetensors applies to {unet_layers} unet layers" in lines
    caplog.clear()
    failed = run(fresh, "a red cat <lora:real_sd15:1>")
    assert "'real_sd15' could not be loaded" in failed.message
    assert any(r.levelno == logging.WARNING and "real_sd15.safetensors could not be loaded: its layer sizes do not fit"
               in r.getMessage() for r in caplog.records)


def report_record(*rows: tuple[str, str]) -> logging.LogRecord:
    """A LOAD REPORT as transformers 5 logs it (loading_report.log_state_dict_report)."""
    table = "\n".join(f"{key:<60} | {status:<7} | " for key, status in rows)
    message = (f"\x1b[1mCLIPTextModel LOAD REPORT\x1b[0m from: None\nKey{' ' * 58}| Status  | \n{'-' * 61}+---------+-\n"
               f"{table}\nNotes:\n- MISSING:\tthose params were newly initialized because missing from the checkpoint.")
    return logging.LogRecord("transformers.integrations.peft", logging.WARNING, __file__, 1, message, None, None)


def test_only_reports_of_other_adapters_missing_weights_are_dropped():
    quiet = _OtherAdaptersReport("lora_3")
    others = report_record(("encoder.layers.{0, 1}.mlp.fc1.lora_B.lora_1.weight", "MISSING"),
                           ("encoder.layers.{0, 1}.self_attn.k_proj.lora_A.lora_2.weight", "MISSING"))
    assert quiet.filter(others) is False
    own = report_record(("encoder.layers.{0, 1}.mlp.fc1.lora_B.lora_1.weight", "MISSING"),
                        ("encoder.layers.0.mlp.fc1.lora_A.lora_3.weight", "MISSING"))
    unexpected = report_record(("encoder.layers.0.mlp.fc9.lora_A.lora_1.weight", "UNEXPECTED"))
    unknown = report_record(("encoder.layers.0.mlp.fc1.weight", "MISSING"))
    plain = logging.LogRecord("transformers.integrations.peft", logging.WARNING, __file__, 1, "something else", None, None)
    assert all(quiet.filter(record) is True for record in (own, unexpected, unknown, plain))


def test_step_schedules_use_their_first_value(generator):
    scheduled = run(generator, "a red cat <lora:style:te=0.5@0,1@0.5:unet=0.5>")
    assert "step schedules such as '0.5@0,1@0.5' work in SDNext only; standalone used 0.5" in scheduled.message
    assert delta(pixels(scheduled), pixels(run(generator, "a red cat <lora:style:0.5>"))) == 0


def test_a_changed_lora_file_is_loaded_again(model, tmp_path):
    path = tmp_path / "changing.safetensors"
    synth.write_lora(path, "sd1", rank=4, tiny=True, data="random", seed=11)
    generator = DiffusersGenerator(model, str(tmp_path / "out"), resolve_lora=lambda _name: str(path))
    before = pixels(run(generator, "a red cat <lora:changing:1>"))
    synth.write_lora(path, "sd1", rank=4, tiny=True, data="random", seed=12)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    after = pixels(run(generator, "a red cat <lora:changing:1>"))
    fresh = DiffusersGenerator(model, str(tmp_path / "out2"), resolve_lora=lambda _name: str(path))
    assert delta(before, after) > 0.01
    assert delta(after, pixels(run(fresh, "a red cat <lora:changing:1>"))) == 0


def test_demo_library_loras_fit_the_demo_model(model, tmp_path):
    root = tmp_path / "Lora"
    files = {p.relative_to(root).with_suffix("").as_posix(): str(p) for p in demo.create_demo_library(root)}
    # prompt names by position: one demo name holds '>', which no <lora:…> token can carry
    names = {f"demo{i}": files[rel] for i, rel in enumerate(demo.DEMO_MODEL_LORAS)}
    names["unlabelled"] = files["concepts/unlabelled_sd15"]
    generator = DiffusersGenerator(model, str(tmp_path / "out"), resolve_lora=lambda name: names[name])
    base = pixels(run(generator))
    for i, rel in enumerate(demo.DEMO_MODEL_LORAS):
        info = extract(read_header(files[rel]), Path(files[rel]).name)
        assert info.base_model == "sd1"  # still an SD1.5 LoRA to the library
        outcome = run(generator, f"a red cat <lora:demo{i}:1>")
        assert outcome.message == "", rel
        assert delta(pixels(outcome), base) > 0.02, rel
    other = run(generator, "a red cat <lora:unlabelled:1>")
    assert "do not fit this model" in other.message


# --- progress, interrupt, skip, failures -----------------------------------------------------------


def test_progress_reports_steps_batches_and_previews(generator):
    seen: list[Progress] = []
    run(generator, n_iter=2, progress=seen.append)
    sampling = [p for p in seen if p.step]
    assert [(p.step, p.steps, p.batch, p.batches) for p in sampling] == [
        (s, 4, b, 2) for b in (0, 1) for s in (1, 2, 3, 4)]
    assert sampling[-1].fraction == 1.0
    assert all(p.preview is not None and p.preview.size == (64, 64) for p in sampling)


def from_another_thread(action) -> None:
    worker = threading.Thread(target=action)
    worker.start()
    worker.join()


def test_interrupt_keeps_the_images_made_so_far(generator, records):
    def progress(p: Progress) -> None:
        if p.batch == 1 and p.step == 2:
            from_another_thread(generator.interrupt)

    outcome = run(generator, n_iter=4, progress=progress)
    assert outcome.status == GenerationStatus.INTERRUPTED and [i.seed for i in outcome.images] == [7]
    assert "Interrupted after 1 of 4 images" in outcome.message
    assert records[-1].status == GenerationStatus.INTERRUPTED and len(records[-1].images) == 1
    assert run(generator).status == GenerationStatus.SUCCEEDED  # the next generation is not interrupted


def test_skip_abandons_one_batch_and_goes_on(generator):
    def progress(p: Progress) -> None:
        if p.batch == 0 and p.step == 1:
            from_another_thread(generator.skip)

    outcome = run(generator, n_iter=3, progress=progress)
    assert outcome.status == GenerationStatus.SUCCEEDED and [i.seed for i in outcome.images] == [8, 9]
    assert "Skipped batch 1 of 3" in outcome.message


def test_a_pipeline_error_fails_with_its_message(generator, records):
    def progress(p: Progress) -> None:
        if p.batch == 1 and p.step == 1:
            raise RuntimeError("out of memory while sampling")

    outcome = run(generator, n_iter=2, progress=progress)
    assert outcome.status == GenerationStatus.FAILED and len(outcome.images) == 1
    assert outcome.message.startswith("Generation failed: out of memory while sampling")
    assert records[-1].status == GenerationStatus.FAILED and "out of memory" in records[-1].error


def test_a_request_without_size_or_steps_gets_the_models_native_ones(model, loras, tmp_path):
    fresh = DiffusersGenerator(model, str(tmp_path / "out"), resolve_lora=resolver(loras))
    native = {"width": 64, "height": 64, "steps": demo_model.STEPS}  # UNet sample size 8 × VAE scale 8
    assert fresh.defaults() == native and fresh._pipe is None  # read from the configs, nothing loaded
    outcome = fresh.generate(GenerationRequest.from_dict({"prompt": "a red cat", "seed": 3}, fresh.defaults()),
                             lambda _p: None)
    assert outcome.status == GenerationStatus.SUCCEEDED
    with Image.open(outcome.images[0].path) as image:
        assert image.size == (64, 64)
    params = parse_infotext(outcome.images[0].infotext)
    assert (params["Size"], params["Steps"]) == ("64x64", demo_model.STEPS)
    assert fresh._pipe is not None and fresh.defaults() == native  # the loaded pipeline agrees
    # the user's values win over the model's
    chosen = GenerationRequest.from_dict({"width": 128, "steps": 3}, fresh.defaults())
    assert (chosen.width, chosen.height, chosen.steps) == (128, 64, 3)


def test_rest_generate_without_size_or_steps_uses_the_native_ones(model, loras, library, tmp_path):
    """POST /generate with a prompt only, over the real pipeline and job queue: the answer shows
    the request as queued, and the image comes out at the model's size."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lib_lora_manager import api
    from lib_lora_manager.jobs import JobQueue

    generator = DiffusersGenerator(model, str(tmp_path / "out"), resolve_lora=resolver(loras))
    jobs = JobQueue(library.store, generator)
    app = FastAPI()
    api.mount(app.add_api_route, api.job_routes(lambda: library, lambda: jobs))
    try:
        with TestClient(app) as client:
            answer = client.post("/lora-manager/v1/generate", json={"prompt": "a red cat", "seed": 1}).json()
            assert (answer["request"]["width"], answer["request"]["height"], answer["request"]["steps"]) == (
                64, 64, demo_model.STEPS)
            job = jobs.wait(answer["job"], timeout=120)
            assert job["status"] == "succeeded", job
            with Image.open(job["images"][0]["path"]) as image:
                assert image.size == (64, 64)
            chosen = client.post("/lora-manager/v1/generate", json={"prompt": "x", "width": 128, "steps": 2}).json()
            assert (chosen["request"]["width"], chosen["request"]["height"], chosen["request"]["steps"]) == (128, 64, 2)
            jobs.cancel(chosen["job"])
    finally:
        jobs.close()


def test_native_size_of_odd_configs():
    assert _native_size(96, 8) == {"width": 768, "height": 768}
    assert _native_size([64, 96], 8) == {"width": 768, "height": 512}  # [height, width]
    assert _native_size(4, 8) == {} and _native_size(None, 8) == {} and _native_size(True, 8) == {}  # unusable


@pytest.mark.parametrize("path", ["", "missing-model-folder", "not-a-model"])
def test_no_model(tmp_path, records, path):
    if path == "not-a-model":
        (tmp_path / path).mkdir()
    if path:
        path = str(tmp_path / path)
    generator = DiffusersGenerator(path, str(tmp_path / "out"), resolve_lora=resolver({}), record=records.append)
    assert generator.model_family() is None
    assert generator.defaults() == {}  # GenerationRequest's own defaults hold
    outcome = generator.generate(request(), lambda _p: None)
    assert outcome.status == GenerationStatus.NO_MODEL and outcome.images == []
    assert outcome.message and "Traceback" not in outcome.message
    assert records[-1].status == GenerationStatus.NO_MODEL and records[-1].error == outcome.message
    assert not (tmp_path / "out").exists()


# --- saving, infotext, history ---------------------------------------------------------------------


def test_png_has_sdnext_infotext_and_counted_names(generator, records):
    prompt = "a red cat, oil: painting <lora:style:0.8> <lora:other:te=0.5:unet=1>"
    outcome = run(generator, prompt, negative_prompt="blurry", batch_size=2, seed=40, cfg_scale=7.5,
                  sampler_name="Euler a", group="sweep-1", label="style 0.8")
    first, second = outcome.images
    with Image.open(first.path) as image:
        assert image.text["parameters"] == first.infotext
    params = parse_infotext(first.infotext)
    assert params["Prompt"] == prompt and params["Negative prompt"] == "blurry"
    assert (params["Steps"], params["Size"], params["Sampler"], params["Seed"], params["CFG scale"]) == (
        4, "64x64", "Euler a", 40, 7.5)
    assert (params["Model"], params["LoRA networks"], params["App"]) == ("tiny-sd", "style, other", "LoRA Manager")
    assert first.infotext.splitlines()[-1].startswith("Steps: 4, Size: 64x64, Sampler: Euler a, Seed: 40, CFG scale: 7.5")
    assert parse_infotext(second.infotext)["Seed"] == 41
    folder, name = Path(first.path).parent, Path(first.path).name
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", folder.name) and re.fullmatch(r"\d{5}-40\.png", name)
    assert int(Path(second.path).name[:5]) == int(name[:5]) + 1
    assert int(Path(run(generator).images[0].path).name[:5]) == int(name[:5]) + 2

    record = records[-2]
    assert (record.status, record.source, record.prompt, record.negative_prompt) == (
        GenerationStatus.SUCCEEDED, "lora-manager", prompt, "blurry")
    assert (record.seeds, record.width, record.height, record.steps, record.sampler, record.cfg_scale) == (
        [40, 41], 64, 64, 4, "Euler a", 7.5)
    assert (record.model_name, record.group, record.label, record.error) == ("tiny-sd", "sweep-1", "style 0.8", None)
    assert [(u.name, u.te_weight, u.unet_weight) for u in record.loras] == [("style", 0.8, 0.8), ("other", 0.5, 1.0)]
    assert [(i.path, i.seed) for i in record.images] == [(first.path, 40), (second.path, 41)]
    assert record.infotext == first.infotext and record.duration > 0


def test_every_sampler_runs_and_an_unknown_one_falls_back(generator):
    images = {}
    for name in generator.samplers():
        outcome = run(generator, sampler_name=name)
        assert outcome.status == GenerationStatus.SUCCEEDED and outcome.message == "", name
        assert parse_infotext(outcome.images[0].infotext)["Sampler"] == name
        images[name] = pixels(outcome)
    assert max(delta(image, images["DDIM"]) for image in images.values()) > 0.01
    default = run(generator)
    assert parse_infotext(default.images[0].infotext)["Sampler"] == "DDIM"  # the model's own scheduler
    odd = run(generator, sampler_name="Restart")
    assert "Sampler 'Restart' is not available here; used DDIM" in odd.message
    assert delta(pixels(odd), pixels(default)) == 0


def test_hires_pass_upscales_in_latent_space(generator):
    outcome = run(generator, enable_hr=True, hr_scale=2.0, denoising_strength=0.5, hr_upscaler="Latent (nearest)")
    assert outcome.status == GenerationStatus.SUCCEEDED and outcome.message == ""
    with Image.open(outcome.images[0].path) as image:
        assert image.size == (128, 128)
    params = parse_infotext(outcome.images[0].infotext)
    assert (params["Size"], params["Hires upscaler"], params["Hires upscale"], params["Denoising strength"]) == (
        "64x64", "Latent (nearest)", 2, 0.5)
    plain = run(generator, enable_hr=True, denoising_strength=0.0)  # no second-pass step: upscaled latents only
    with Image.open(plain.images[0].path) as image:
        assert plain.status == GenerationStatus.SUCCEEDED and image.size == (128, 128)
    odd = run(generator, enable_hr=True, hr_upscaler="R-ESRGAN 4x+")
    assert "Upscaler 'R-ESRGAN 4x+' is not available standalone; used Latent" in odd.message


def test_an_sdxl_folder(tmp_path, loras):
    folder = build_tiny_sdxl(tmp_path / "tiny-xl")
    generator = DiffusersGenerator(str(folder), str(tmp_path / "out"), resolve_lora=resolver(loras))
    assert generator.model_family() == "sdxl" and generator._pipe is None
    assert generator.defaults() == {"width": 64, "height": 64}  # its UNet's sample size 8 × VAE scale 8
    outcome = run(generator, "a red cat <lora:style:1>", sampler_name="Euler a", enable_hr=True)
    assert outcome.status == GenerationStatus.SUCCEEDED and "'style' could not be loaded" in outcome.message  # an SD1.5 LoRA
    with Image.open(outcome.images[0].path) as image:
        assert image.size == (128, 128)
    assert parse_infotext(outcome.images[0].infotext)["Model"] == "tiny-xl"


def build_tiny_sdxl(folder: Path) -> Path:
    """SDXL's pipeline (two text encoders, size/crop conditioning) at toy size."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = demo_model.build_tokenizer(folder.parent / "tokenizer-source")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4), use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=1)
    vae = AutoencoderKL(**{**demo_model.VAE, "scaling_factor": 0.13025})
    config = CLIPTextConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, hidden_size=32, intermediate_size=37,
                            num_attention_heads=4, num_hidden_layers=2, vocab_size=1000, projection_dim=32)
    scheduler = EulerDiscreteScheduler(**{k: v for k, v in demo_model.SCHEDULER.items() if k in (
        "beta_start", "beta_end", "beta_schedule", "steps_offset")}, timestep_spacing="leading")
    StableDiffusionXLPipeline(vae=vae, text_encoder=CLIPTextModel(config), text_encoder_2=CLIPTextModelWithProjection(config),
                              tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet, scheduler=scheduler).save_pretrained(folder)
    return folder


# --- single-file checkpoints -----------------------------------------------------------------------


def test_single_file_checkpoint_with_a_local_config(model, loras, tmp_path):
    checkpoint = write_ldm_checkpoint(Path(model), tmp_path / "tiny-sd.safetensors")
    alone = DiffusersGenerator(str(checkpoint), str(tmp_path / "a"), resolve_lora=resolver(loras))
    assert alone.model_family() == "sd1"
    assert alone.defaults() == {}  # no configuration to read its size from
    refused = alone.generate(request(), lambda _p: None)
    assert refused.status == GenerationStatus.NO_MODEL and "--model-config PATH" in refused.message
    configured = DiffusersGenerator(str(checkpoint), str(tmp_path / "b"), resolve_lora=resolver(loras),
                                    model_config=model)
    assert configured.defaults() == {"width": 64, "height": 64}  # from the configuration's UNet and VAE
    folder = DiffusersGenerator(model, str(tmp_path / "c"), resolve_lora=resolver(loras))
    prompt = "a red cat <lora:style:1>"
    made = run(configured, prompt)
    assert made.status == GenerationStatus.SUCCEEDED and made.message == ""
    # the same model weights, up to float rounding
    assert delta(pixels(run(configured, "a red cat")), pixels(run(folder, "a red cat"))) < 0.002
    # and the LoRA applies to it: here (transformers 5.17, diffusers 0.40) about 5 % of its effect
    # differs from the folder model's; a LoRA that did not apply would differ by all of it
    by_folder = pixels(run(folder, prompt))
    effect = delta(by_folder, pixels(run(folder, "a red cat")))
    assert delta(pixels(made), by_folder) < 0.15 * effect
    assert parse_infotext(made.images[0].infotext)["Model"] == "tiny-sd"


_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_VAE_ATTENTION = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def write_ldm_checkpoint(model: Path, out: Path) -> Path:
    """The diffusers folder as an original-layout (LDM) single file, as checkpoints are shared."""
    unet_config = json.loads((model / "unet/config.json").read_text())
    vae_config = json.loads((model / "vae/config.json").read_text())
    state = {}
    unet = _unet_prefixes(unet_config)
    for key, value in load_file(model / "unet/diffusion_pytorch_model.safetensors").items():
        state["model.diffusion_model." + _renamed(key, unet, _RESNET if "resnets" in key else ())] = value
    vae = _vae_prefixes(vae_config)
    for key, value in load_file(model / "vae/diffusion_pytorch_model.safetensors").items():
        new = _renamed(key, vae, _VAE_ATTENTION if ".attentions." in key else (("conv_shortcut", "nin_shortcut"),))
        if ".mid.attn_1." in new and new.endswith("weight") and value.ndim == 2:
            value = value[:, :, None, None]  # linear -> 1x1 conv
        state["first_stage_model." + new] = value
    for key, value in load_file(model / "text_encoder/model.safetensors").items():
        key = key if key.startswith("text_model.") else "text_model." + key  # transformers 5 dropped it
        state["cond_stage_model.transformer." + key] = value
    save_file({k: v.contiguous() for k, v in state.items()}, str(out))
    return out


def _renamed(key: str, prefixes: list[tuple[str, str]], inner: tuple = ()) -> str:
    for old, new in prefixes:
        if key.startswith(old):
            rest = key[len(old):]
            for a, b in inner:
                if rest.startswith(a + "."):
                    rest = b + rest[len(a):]
            return new + rest
    return key


def _unet_prefixes(config: dict) -> list[tuple[str, str]]:
    per, blocks = config["layers_per_block"], len(config["block_out_channels"])
    pairs = [("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
             ("conv_in.", "input_blocks.0.0."), ("conv_norm_out.", "out.0."), ("conv_out.", "out.2."),
             ("mid_block.resnets.0.", "middle_block.0."), ("mid_block.attentions.0.", "middle_block.1."),
             ("mid_block.resnets.1.", "middle_block.2.")]
    for i in range(blocks):
        for j in range(per):
            pairs += [(f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{1 + i * (per + 1) + j}.0."),
                      (f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{1 + i * (per + 1) + j}.1.")]
        for j in range(per + 1):
            pairs += [(f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{i * (per + 1) + j}.0."),
                      (f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{i * (per + 1) + j}.1.")]
        if i < blocks - 1:
            attention = config["up_block_types"][i].startswith("CrossAttn")
            pairs += [(f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (per + 1)}.0.op."),
                      (f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{i * (per + 1) + per}.{2 if attention else 1}.")]
    return pairs


def _vae_prefixes(config: dict) -> list[tuple[str, str]]:
    blocks, per = len(config["block_out_channels"]), config["layers_per_block"]
    pairs = [("encoder.conv_norm_out.", "encoder.norm_out."), ("decoder.conv_norm_out.", "decoder.norm_out.")]
    for part in ("encoder", "decoder"):
        pairs += [(f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1."),
                  (f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2."),
                  (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.")]
    for i in range(blocks):
        pairs += [(f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.") for j in range(per)]
        pairs += [(f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{blocks - 1 - i}.block.{j}.")
                  for j in range(per + 1)]
        if i < blocks - 1:
            pairs += [(f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."),
                      (f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{blocks - 1 - i}.upsample.")]
    return pairs
