"""The PP-OCR model sets the RapidOCR provider can run, each from the files of its pinned wheel.

- PP-OCRv6 small (the default): `rapidocr==3.10.0`, `rapidocr/models/`; digests as the wheel's
  `licenses/MODEL_LICENSES.md` lists them (Apache-2.0, Baidu / PaddleOCR weights).
- PP-OCRv4: `rapidocr-onnxruntime==1.4.4`, `rapidocr_onnxruntime/models/` (Apache-2.0).

Files are found by explicit paths inside the installed package, located without importing it (no
model registry, no download helper: no code path can fetch anything), and each file's SHA-256 is
checked against the pinned digest before a session opens, so a changed wheel fails at start
instead of reading differently. Both sets share the loop of `providers.rapidocr`: the same
input normalisation, a 48 px recognizer with one CTC frame per 8 columns, and the character list
inside the recognizer's own metadata.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Literal

import msgspec

from providers.errors import ProviderUnavailableError

ModelSetName = Literal["PP-OCRv6", "PP-OCRv4"]


SHA256 = {  # the pinned digest of every model file, by file name
    "PP-OCRv6_det_small.onnx": "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
    "PP-OCRv6_rec_small.onnx": "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
    "ch_ppocr_mobile_v2.0_cls_mobile.onnx": (
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"
    ),
    "ch_PP-OCRv4_det_infer.onnx": (
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"
    ),
    "ch_PP-OCRv4_rec_infer.onnx": (
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"
    ),
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": (
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"
    ),
}


class ModelSet(msgspec.Struct, frozen=True, kw_only=True):
    package: str  # the import package whose models/ folder holds the files
    label: str  # the model name results carry (`RecognizedPage.model`)
    det: str  # file names in that folder
    rec: str
    cls: str  # the per-line 0/180 classifier, loaded only when `use_angle_cls` is on

    def path(self, file: str) -> Path:
        """A file of this set, its SHA-256 checked against the pinned one."""
        return verified_path(self.package, file, SHA256[file])


MODEL_SETS: dict[ModelSetName, ModelSet] = {
    "PP-OCRv6": ModelSet(
        package="rapidocr",
        label="rapidocr-3.10.0/PP-OCRv6-small",
        det="PP-OCRv6_det_small.onnx",
        rec="PP-OCRv6_rec_small.onnx",
        cls="ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    ),
    "PP-OCRv4": ModelSet(
        package="rapidocr_onnxruntime",
        label="rapidocr-onnxruntime-1.4.4/PP-OCRv4",
        det="ch_PP-OCRv4_det_infer.onnx",
        rec="ch_PP-OCRv4_rec_infer.onnx",
        cls="ch_ppocr_mobile_v2.0_cls_infer.onnx",
    ),
}


def models_folder(package: str) -> Path:
    """The installed package's models/ folder, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderUnavailableError(f"{package} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def verified_path(package: str, file: str, sha256: str) -> Path:
    """`file` in the package's models/ folder, after its SHA-256 matched `sha256`."""
    path = models_folder(package) / file
    try:
        with path.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        raise ProviderUnavailableError(f"{package}: model {file} missing") from exc
    if digest != sha256:
        raise ProviderUnavailableError(
            f"{package}: model {file} has SHA-256 {digest}, not the pinned {sha256}"
        )
    return path
