"""modules.cmd_args: SDNext's command line, as an argparse.Namespace.

SDNext parses sys.argv; the double builds the namespace from the real defaults plus the
values a test passes to ``configure()`` (``tests/sdnext.start`` calls it before anything
else is imported, as SDNext parses arguments first)."""
import argparse
import os

parsed = None


def defaults(data_dir=""):
    """The arguments an extension may read, with SDNext's defaults (no SD_* variables set)."""
    return dict(
        # paths
        ckpt=None, data_dir=data_dir, models_dir=None, embeddings_dir=None, vae_dir=None,
        lora_dir=None, extensions_dir=None,
        config=os.path.join(data_dir, "config.json"), secrets=os.path.join(data_dir, "secrets.json"),
        ui_config=os.path.join(data_dir, "ui-config.json"),
        freeze=False, medvram=False, lowvram=False, disable="",
        # compute
        device_id=None, use_cuda=False, use_ipex=False, use_rocm=False, use_zluda=False,
        use_openvino=False, use_directml=False, use_xformers=False, use_nightly=False,
        no_half=False, no_half_vae=False,
        # ui, http
        theme=None, locale=None, enso=False, server_name=None, tls_keyfile=None,
        tls_certfile=None, tls_selfsign=False, cors_origins=None, cors_regex=None, subpath=None,
        autolaunch=False, auth=None, auth_file=None, allowed_paths=[], insecure=False,
        listen=False, port=7860,
        # diagnostics, logging
        experimental=False, ignore=False, new=False, safe=False, test=False, version=False,
        monitor=-1.0, status=-1.0, log=None, debug=True, trace=False, profile=False, docs=True,
        api_log=True, args=[],
        # compatibility options that are still read
        backend=None, allow_code=False, enable_insecure_extension_access=False, use_cpu=[],
        f=False, vae=None, hide_ui_dir_config=False, disable_console_progressbars=True,
        disable_safe_unpickle=True, lowram=False, disable_extension_access=False, api=True,
        api_auth=None, api_only=False, disable_queue=False, no_hashing=False, no_metadata=False,
        precision="autocast", upcast_sampling=False, hypernetwork_dir=None, share=False,
    )


def configure(**values) -> argparse.Namespace:
    """Set the parsed arguments: SDNext's defaults updated with ``values`` (underscored names)."""
    global parsed  # pylint: disable=global-statement
    settings = defaults(values.get("data_dir", ""))
    unknown = set(values) - set(settings)
    if unknown:
        raise TypeError(f"not SDNext arguments: {sorted(unknown)}")
    settings.update(values)
    parsed = argparse.Namespace(**settings)
    return parsed


def parse_args():
    if parsed is None:
        configure()
    return parsed


def settings_args(opts, args):
    """The second parse in SDNext (modules/cmd_args.py settings_args): fixed legacy values go
    onto opts as plain attributes, and path arguments left unset are taken from the options,
    with an onchange that keeps them in step when the option changes later."""
    opts.use_old_emphasis_implementation = False
    opts.lora_apply_to_outputs = False
    opts.add_model_hash_to_info = True
    opts.add_model_name_to_info = True
    opts.enable_pnginfo = True
    opts.data['clip_skip'] = 1
    args = argparse.Namespace(**vars(args))  # SDNext parses again: a new namespace object
    for d in ['lora_dir', 'embeddings_dir', 'hypernetwork_dir', 'vae_dir', 'ckpt_dir']:
        if hasattr(opts, d):
            if getattr(args, d, None) is None:
                setattr(args, d, getattr(opts, d))
            opts.onchange(d, lambda d=d: setattr(args, d, getattr(opts, d)), call=False)
    return args
