"""modules.lora.network: NetworkOnDisk (one LoRA file) and Network (a loaded LoRA)."""
import os

from modules import hashes, sd_checkpoint, shared

metadata_tags_order = {"ss_sd_model_name": 1, "ss_resolution": 2, "ss_clip_skip": 3, "ss_num_train_images": 10, "ss_tag_frequency": 20}


class NetworkOnDisk:
    def __init__(self, name, filename):
        self.shorthash = None
        self.hash = None
        self.name = name
        self.filename = filename
        if filename.startswith(shared.cmd_opts.lora_dir):
            rel = filename[len(shared.cmd_opts.lora_dir):].lstrip('/\\').replace('\\', '/')
            self.fullname = os.path.splitext(rel)[0] if rel else name
        else:
            self.fullname = name
        self.metadata = {}
        self.is_safetensors = os.path.splitext(filename)[1].lower() == ".safetensors"
        if self.is_safetensors:
            self.metadata = sd_checkpoint.read_metadata_from_safetensors(filename)
        if self.metadata:
            self.metadata = dict(sorted(self.metadata.items(), key=lambda x: metadata_tags_order.get(x[0], 999)))
        self.alias = self.metadata.get('ss_output_name', self.name)
        sha256 = (hashes.sha256_from_cache(self.filename, "lora/" + self.name)
                  or hashes.sha256_from_cache(self.filename, "lora/" + self.name, store='hashes-addnet')
                  or self.metadata.get('sshs_model_hash'))
        self.set_hash(sha256)
        self.sd_version = self.detect_version()

    def detect_version(self):
        base = str(self.metadata.get('ss_base_model_version', "")).lower()
        arch = str(self.metadata.get('modelspec.architecture', "")).lower()
        for prefix, version in (("sd_v1", 'sd1'), ("sdxl", 'xl'), ("stable_cascade", 'sc'), ("sd3", 'sd3'), ("flux2", 'f2'), ("flux", 'f1')):
            if base.startswith(prefix):
                return version
        for prefix, version in (("stable-diffusion-v1", 'sd1'), ("stable-diffusion-xl", 'xl'), ("stable-cascade", 'sc'), ("flux2", 'f2'), ("flux", 'f1')):
            if arch.startswith(prefix):
                return version
        if "v1-5" in str(self.metadata.get('ss_sd_model_name', "")):
            return 'sd1'
        if str(self.metadata.get('ss_v2', "")) == "True":
            return 'sd2'
        if 'flux' in self.name.lower():
            return 'f1'
        if 'xl' in self.name.lower():
            return 'xl'
        return ''

    def set_hash(self, v):
        self.hash = v or ''
        self.shorthash = self.hash[0:8]

    def read_hash(self):
        if not self.hash:
            self.set_hash(hashes.sha256(self.filename, "lora/" + self.name, store='hashes-addnet' if self.is_safetensors else None) or '')

    def get_info(self):
        if shared.cmd_opts.no_metadata:
            return {}
        fn = os.path.splitext(self.filename)[0] + '.json'
        return shared.readfile(fn, silent=True, as_type="dict") if os.path.exists(fn) else {}

    def get_desc(self):
        if shared.cmd_opts.no_metadata:
            return None
        fn = os.path.splitext(self.filename)[0] + '.txt'
        if os.path.exists(fn):
            with open(fn, encoding="utf-8") as file:
                return file.read()
        return None

    def get_alias(self):
        return self.name


class Network:
    def __init__(self, name, network_on_disk):
        self.name = name
        self.network_on_disk = network_on_disk
        self.te_multiplier = 1.0
        self.unet_multiplier = [1.0] * 3
        self.dyn_dim = None
        self.modules = {}
        self.bundle_embeddings = {}
        self.mtime = None
        self.mentioned_name = None
        self.tags = None
