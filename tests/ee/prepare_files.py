"""Fill out/ee/files/ for `ansible-builder build` of the root execution-environment.yml.

    .venv/bin/python tests/ee/prepare_files.py [--out out/ee/files] [--helm PATH]

Writes (fixed names, referenced by execution-environment.yml):
  gpuinfer-serving.tar.gz  `ansible-galaxy collection build` of this checkout's collection
  kubernetes-core.tar.gz   the kubernetes.core installed with the `ansible` package (no Galaxy access)
  helm                     --helm / GPUINFER_EE_HELM, else the Helm the simulated cluster builds
  pip.conf, ca-bundle.crt  the host's effective pip configuration and CA bundle
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTION = REPO_ROOT / "collections" / "ansible_collections" / "gpuinfer" / "serving"
VENV_BIN = Path(sys.executable).parent
SIM_SH = REPO_ROOT / "tests" / "cluster" / "sim.sh"
# Where the files land inside the build (execution-environment.yml, prepend_base).
IN_IMAGE_DIR = "/etc/gpuinfer-ee-build"


def say(msg: str) -> None:
    print(f"prepare_files: {msg}", file=sys.stderr)


def build_collection(out: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", tmp, str(COLLECTION)],
            check=True, capture_output=True, text=True,
        )
        (built,) = Path(tmp).glob("gpuinfer-serving-*.tar.gz")
        shutil.copyfile(built, out / "gpuinfer-serving.tar.gz")
        return built.name


def installed_collection(namespace: str, name: str) -> Path:
    import ansible_collections  # the `ansible` package's bundle

    for root in ansible_collections.__path__:
        candidate = Path(root) / namespace / name
        if (candidate / "MANIFEST.json").is_file():
            return candidate
    raise SystemExit(f"prepare_files: {namespace}.{name} is not installed in {sys.prefix} (make setup)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def pack_installed_collection(src: Path, dest: Path) -> str:
    """An installed collection is its artifact unpacked: MANIFEST.json, FILES.json and the files listed.

    The `ansible` package drops a few files of each collection (.github/, tests/ ...) that FILES.json
    still lists, so FILES.json is rewritten to list what is really there, with the checksums that
    `ansible-galaxy collection install` verifies, and MANIFEST.json to carry FILES.json's new checksum.
    """
    manifest = json.loads((src / "MANIFEST.json").read_text(encoding="utf-8"))
    files_doc = json.loads((src / "FILES.json").read_text(encoding="utf-8"))
    kept = []
    for entry in files_doc["files"]:
        path = src / entry["name"]
        if entry["name"] == "." or (entry["ftype"] == "dir" and path.is_dir()):
            kept.append(entry)
        elif entry["ftype"] == "file" and path.is_file():
            kept.append(dict(entry, chksum_sha256=_sha256(path)))
    files_doc["files"] = kept
    files_bytes = json.dumps(files_doc, indent=4).encode("utf-8")
    manifest["file_manifest_file"]["chksum_sha256"] = hashlib.sha256(files_bytes).hexdigest()
    manifest_bytes = json.dumps(manifest, indent=4).encode("utf-8")

    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(dest, "w:gz") as tar:
        add_bytes(tar, "MANIFEST.json", manifest_bytes)
        add_bytes(tar, "FILES.json", files_bytes)
        for entry in kept:
            if entry["name"] == ".":
                continue
            info = tar.gettarinfo(str(src / entry["name"]), arcname=entry["name"])
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if entry["ftype"] == "dir":
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                with open(src / entry["name"], "rb") as fh:
                    tar.addfile(info, fh)
    info = manifest["collection_info"]
    return f"{info['namespace']}.{info['name']} {info['version']}"


def find_helm(explicit: str | None) -> Path:
    if explicit:
        path = Path(explicit)
        if not os.access(path, os.X_OK):
            raise SystemExit(f"prepare_files: helm {path} is not an executable file")
        return path
    sim_path = subprocess.run([str(SIM_SH), "path"], capture_output=True, text=True, check=True).stdout.strip()
    for directory in sim_path.split(":"):
        candidate = Path(directory) / "helm"
        if os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit(
        "prepare_files: no helm binary: build the simulated cluster's (tests/cluster/sim.sh build) "
        "or set GPUINFER_EE_HELM=/path/to/helm (a linux-amd64 helm v3 from https://get.helm.sh)"
    )


def pip_settings() -> dict[str, str]:
    """The host's effective pip settings that matter for reaching an index: config files, then PIP_* env."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False,
    )
    settings: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        option = key.rsplit(".", 1)[-1]
        settings[option] = value.strip().strip("'\"")
    for option in ("index-url", "extra-index-url", "trusted-host", "cert", "default-timeout", "retries", "proxy"):
        env = os.environ.get("PIP_" + option.upper().replace("-", "_"))
        if env:
            settings[option] = env
    return settings


def ca_bundle(settings: dict[str, str]) -> Path | None:
    for candidate in (
        settings.get("cert"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def write_pip_conf(out: Path) -> str:
    settings = pip_settings()
    conf = configparser.ConfigParser()
    conf["global"] = {}
    for option in ("index-url", "extra-index-url", "trusted-host", "default-timeout", "retries", "proxy"):
        if settings.get(option):
            conf["global"][option] = settings[option]
    bundle = ca_bundle(settings)
    if bundle:
        shutil.copyfile(bundle, out / "ca-bundle.crt")
        conf["global"]["cert"] = f"{IN_IMAGE_DIR}/ca-bundle.crt"
    else:
        (out / "ca-bundle.crt").write_text("", encoding="utf-8")
    buf = io.StringIO()
    buf.write("# The build host's pip configuration (tests/ee/prepare_files.py); removed from the final image.\n")
    conf.write(buf)
    (out / "pip.conf").write_text(buf.getvalue(), encoding="utf-8")
    shown = {k: v for k, v in conf["global"].items() if k not in ("proxy",)}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "pip defaults"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO_ROOT / "out" / "ee" / "files"))
    parser.add_argument("--helm", default=os.environ.get("GPUINFER_EE_HELM"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    say(f"collection {build_collection(out)}")
    kcore = pack_installed_collection(installed_collection("kubernetes", "core"), out / "kubernetes-core.tar.gz")
    say(f"{kcore} (from the ansible package)")
    helm = find_helm(args.helm)
    shutil.copyfile(helm, out / "helm")
    (out / "helm").chmod(0o755)
    say(f"helm from {helm}")
    say(f"pip: {write_pip_conf(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
