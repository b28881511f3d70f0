"""modules.api.api: ``shared.api``; add_api_route applies HTTP Basic auth when --auth or
--auth-file is set (unless auth=False) and also mounts the route under opts.subpath."""
from secrets import compare_digest

from fastapi import Depends
from fastapi.exceptions import HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from modules import shared
from modules.logger import log


class Api:
    def __init__(self, app, queue_lock):
        self.credentials = {}
        if shared.cmd_opts.auth:
            for auth in shared.cmd_opts.auth.split(","):
                user, password = auth.split(":", 1)
                self.credentials[user.replace('"', '').strip()] = password.replace('"', '').strip()
        if shared.cmd_opts.auth_file:
            with open(shared.cmd_opts.auth_file, encoding="utf8") as file:
                for line in file.readlines():
                    user, password = line.split(":", 1)
                    self.credentials[user.replace('"', '').strip()] = password.replace('"', '').strip()
        self.app = app
        self.queue_lock = queue_lock
        self.routes = []  # the double: (path, auth applied) of every add_api_route call

    def register(self):
        self.add_api_route("/sdapi/v1/status", lambda: shared.state.status(), methods=["GET"], tags=["Server"])

    def add_api_route(self, path, fn, auth=True, **kwargs):
        protected = bool(auth and self.credentials)
        if protected:
            deps = list(kwargs.get('dependencies', []))
            deps.append(Depends(self.auth))
            kwargs['dependencies'] = deps
        self.routes.append((path, protected))
        if shared.opts.subpath is not None and len(shared.opts.subpath) > 0:
            self.app.add_api_route(f'{shared.opts.subpath}{path}', endpoint=fn, **kwargs)
        self.app.add_api_route(path, endpoint=fn, **kwargs)

    def auth(self, credentials: HTTPBasicCredentials = Depends(HTTPBasic())):
        if not self.credentials:
            return True
        if credentials.username in self.credentials:
            if compare_digest(credentials.password, self.credentials[credentials.username]):
                return True
        log.error(f'API authentication: user="{credentials.username}"')
        raise HTTPException(status_code=401, detail="Unauthorized", headers={"WWW-Authenticate": "Basic"})
