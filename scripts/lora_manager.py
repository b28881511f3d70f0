# SDNext imports this file with the extension folder on sys.path; everything lives in the package.
from lib_lora_manager.hosts import sdnext

sdnext.register()
