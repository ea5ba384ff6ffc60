"""A Hugging Face Hub mirror on your own machine: it serves model folders under Hub ids, so that
`HF_ENDPOINT=http://HOST:PORT` sends huggingface_hub, transformers and Unsloth to it. For a classroom on a bad
network (one download, thirty learners: docs/teaching.md), and for the test of the mirror path
(tests/test_hub_mirror.py starts this same server on 127.0.0.1).

    python -m course_lib.hub_mirror --serve baidu/ERNIE-4.5-0.3B-PT=./ERNIE-4.5-0.3B-PT --host 0.0.0.0 --port 8090

Why the course has its own: olah 0.5.4 (PyPI, "self-hosted lightweight huggingface mirror") serves local git
repositories offline, but answers a file the repository lacks with 401 "Repository not found" instead of the
Hub's 404 EntryNotFound. from_pretrained asks for files that may be absent (adapter_config.json first) and
gives up on that answer: "is not a valid model identifier". It also reads a whole file into memory per request.

Only what from_pretrained and snapshot_download ask of the Hub: a model's info (/api/models/ORG/NAME, with
/revision/REV), its file list (/tree/REV), and its files (/ORG/NAME/resolve/REV/PATH, with HEAD and byte
ranges). Every revision is the folder as it is now. Models only (data sets: the course's bundled fallback).
Standard library only, so it runs from any Python 3.10+.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<revision>[^/]+))?/?$")
TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?$")
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")


def files_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                        p.relative_to(folder).parts))


def file_etag(path: Path) -> str:
    """The sha256 of the file, as the Hub's ETag for large files (computed once per size and mtime)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in file_etag.cache:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        file_etag.cache[key] = digest.hexdigest()
    return file_etag.cache[key]


file_etag.cache = {}


def folder_commit(folder: Path) -> str:
    """A 40-hex "commit" for the folder as it is: changes when a file is added, removed or rewritten."""
    digest = hashlib.sha1()
    for path in files_of(folder):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class MirrorHandler(BaseHTTPRequestHandler):
    server_version = "ernie-course-hub-mirror/1"
    protocol_version = "HTTP/1.1"

    def __init__(self, *args, models: dict[str, Path], quiet: bool = False, **kwargs):
        self.models, self.quiet = models, quiet
        super().__init__(*args, **kwargs)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if not self.quiet:
            super().log_message(format, *args)

    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def error(self, status: HTTPStatus, code: str, message: str, body: bool) -> None:
        data = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Error-Code", code)  # what huggingface_hub turns into RepositoryNotFound / EntryNotFound
        self.send_header("X-Error-Message", message)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def json(self, value, body: bool) -> None:
        data = json.dumps(value).encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def answer(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        for pattern, reply in ((TREE, self.tree), (API, self.info), (RESOLVE, self.file)):
            match = pattern.match(path)
            if match:
                folder = self.models.get(match["repo"])
                if folder is None:
                    return self.error(HTTPStatus.NOT_FOUND, "RepoNotFound", f"Repository {match['repo']} not found",
                                      body)
                return reply(match, folder, body)
        self.error(HTTPStatus.NOT_FOUND, "NotFound", f"{path}: not something this mirror serves", body)

    def info(self, match, folder: Path, body: bool) -> None:
        files = files_of(folder)
        self.json({"id": match["repo"], "modelId": match["repo"], "sha": folder_commit(folder), "private": False,
                   "gated": False, "disabled": False, "tags": [], "cardData": {},
                   "siblings": [{"rfilename": p.relative_to(folder).as_posix()} for p in files]}, body)

    def tree(self, match, folder: Path, body: bool) -> None:
        base = (folder / (match["path"] or "")).resolve()
        if not base.is_relative_to(folder) or not base.exists():
            return self.error(HTTPStatus.NOT_FOUND, "EntryNotFound", f"{match['path']} not found", body)
        entries = []
        for path in sorted(base.iterdir()):
            if path.name.startswith("."):
                continue
            entry = {"type": "directory" if path.is_dir() else "file", "path": path.relative_to(folder).as_posix(),
                     "oid": folder_commit(folder)}
            if path.is_file():
                entry["size"] = path.stat().st_size
            entries.append(entry)
        self.json(entries, body)

    def file(self, match, folder: Path, body: bool) -> None:
        path = (folder / match["path"]).resolve()
        if not path.is_relative_to(folder) or not path.is_file() or path.name.startswith("."):
            return self.error(HTTPStatus.NOT_FOUND, "EntryNotFound", f"{match['path']} not found in {match['repo']}",
                              body)
        size = path.stat().st_size
        start, end = 0, size - 1
        ranged = re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range", ""))
        if ranged and ranged[1]:
            start, end = int(ranged[1]), min(int(ranged[2]) if ranged[2] else size - 1, size - 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT if ranged and ranged[1] else HTTPStatus.OK)
        self.send_header("Content-Length", str(max(0, end - start + 1)))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("ETag", f'"{file_etag(path)}"')
        self.send_header("X-Repo-Commit", folder_commit(folder))
        self.send_header("Accept-Ranges", "bytes")
        if ranged and ranged[1]:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            with path.open("rb") as handle:  # streamed from disk: thirty downloads cost no RAM per file
                handle.seek(start)
                left = end - start + 1
                while left > 0:
                    block = handle.read(min(1 << 20, left))
                    if not block:
                        break
                    self.wfile.write(block)
                    left -= len(block)


def make_server(models: dict[str, Path], host: str = "127.0.0.1", port: int = 8090,
                quiet: bool = False) -> ThreadingHTTPServer:
    """A server (not yet serving: call serve_forever) for {Hub id: model folder}."""
    folders = {}
    for repo_id, folder in models.items():
        folder = Path(folder).resolve()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} holds no config.json: not a model folder")
        folders[repo_id] = folder
    return ThreadingHTTPServer((host, port), partial(MirrorHandler, models=folders, quiet=quiet))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="append", required=True, metavar="ORG/NAME=FOLDER",
                        help="a model folder to serve under a Hub id; repeat for more models")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve every network of this machine")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    models = dict(item.split("=", 1) for item in args.serve)
    server = make_server(models, args.host, args.port, args.quiet)
    for repo_id, folder in models.items():
        print(f"hub mirror: {repo_id} <- {Path(folder).resolve()}", flush=True)
    shown = "THIS-MACHINES-ADDRESS" if args.host == "0.0.0.0" else args.host
    print(f"hub mirror: serving on {args.host}:{server.server_address[1]}; learners set "
          f"HF_ENDPOINT=http://{shown}:{server.server_address[1]} before importing the libraries", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
