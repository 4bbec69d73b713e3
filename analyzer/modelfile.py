"""Safe model persistence: skops files with a model card inside.

A model file is a skops archive (a zip) holding the fitted ensemble, plus one
extra member, ``harken/card.json``, the model card. The card and the
fingerprint can be read without importing scikit-learn, which keeps a fully
cached run light. Pickle files are never loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from analyzer.errors import ModelError
from analyzer.featureconfig import FEATURE_CODE_VERSION, FeatureConfig

CARD_MEMBER = "harken/card.json"
#: Card entries harken reads; a card without them is not one of its models.
REQUIRED_CARD_KEYS = ("classes", "members", "feature_config")
DEFAULT_MODEL_PATH = Path(__file__).parent / "models" / "default.skops"
#: Largest difference from its saved answers a loaded model may show (float
#: noise across machines is far smaller; a changed algorithm far larger).
ANSWER_TOLERANCE = 1e-6


class ModelWarning(UserWarning):
    """A model file loads, but cannot vouch for its answers here."""


#: Types harken's own model files contain beyond those skops trusts by default:
#: the ensemble itself and scikit-learn internals of its members. The losses
#: are for files from before ``PackedGradientBoosting`` (which rebuilds its
#: own), as TreePredictor is: skops beside scikit-learn 1.7 (the newest for
#: Python 3.10) knows their compiled classes by another name than 1.9 writes.
TRUSTED_TYPES = frozenset(
    {
        "analyzer.boosting.PackedGradientBoosting",
        "analyzer.ensemble.VotingEnsemble",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        # (newer skops trust this one by default; skops 0.10 does not)
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
    }
)


@dataclass(frozen=True)
class ModelCard:
    """What a model file says about itself."""

    data: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.data.get("name", "model"))

    @property
    def classes(self) -> list[str]:
        return list(self.data["classes"])

    @property
    def members(self) -> list[str]:
        return list(self.data["members"])

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig.from_dict(self.data["feature_config"])


@dataclass(frozen=True)
class ModelRef:
    """A model file identified by path and content, not yet loaded."""

    path: str
    fingerprint: str
    card: ModelCard

    @property
    def model_id(self) -> str:
        return f"{self.card.name}@{self.fingerprint[:12]}"


def resolve_model(path: str | Path | None = None) -> ModelRef:
    """Read a model file's card and fingerprint (no scikit-learn import).

    Parameters
    ----------
    path : str or Path, optional
        A ``.skops`` model file; the shipped default model when omitted.
    """
    model_path = str((Path(path) if path is not None else DEFAULT_MODEL_PATH).resolve())
    try:
        st = os.stat(model_path)
    except OSError as exc:
        raise ModelError(f"cannot read model file {model_path}: {exc.strerror or exc}") from None
    return _resolve(model_path, st.st_size, st.st_mtime_ns)


def read_card(path: str | Path) -> tuple[dict[str, Any], str]:
    """A model file's card and fingerprint, whether or not this harken can
    use the model (``harken model show`` of one built by another version)."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    return _card_of(path, data), fingerprint_of(data)


def _card_of(path: str, data: bytes) -> dict[str, Any]:
    if not data.startswith(b"PK"):
        # A pickle starts with its protocol's opcode (0x80) on protocols 2 and later.
        what = (
            "a pickle file; harken never loads pickle files"
            if data[:1] == b"\x80"
            else ("empty" if not data else "not a skops model file (a skops file is a zip archive)")
        )
        raise ModelError(f"{path} is {what}. Train a model with harken or save it with skops.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            card = json.loads(archive.read(CARD_MEMBER))
    except (KeyError, zipfile.BadZipFile, ValueError) as exc:
        raise ModelError(f"{path} has no readable harken model card ({exc})") from None
    if not isinstance(card, dict):
        raise ModelError(f"{path} has no readable harken model card (not an object)")
    return card


@cache
def _resolve(path: str, size: int, mtime_ns: int) -> ModelRef:
    """The reference of a model file, once per version of the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    card = _card_of(path, data)
    lacking = [key for key in REQUIRED_CARD_KEYS if key not in card]
    if lacking:
        raise ModelError(f"{path}: its model card lacks {', '.join(lacking)}; retrain the model")
    code = card.get("feature_code_version")
    if code != FEATURE_CODE_VERSION:
        raise ModelError(
            f"{path} was built with feature code version {code}, this harken computes"
            f" version {FEATURE_CODE_VERSION}; retrain the model with this version."
        )
    try:
        FeatureConfig.from_dict(card["feature_config"])
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelError(f"{path}: its model card's feature config is not valid ({exc})") from None
    ref = ModelRef(path=path, fingerprint=fingerprint_of(data), card=ModelCard(card))
    # Said here, once, by the process that resolves the model: pool workers
    # load it too, and each would say it again.
    if not card.get("answers_checked") and _built_elsewhere(ref):
        warnings.warn(
            f"{path} was saved before harken models checked their own answers,"
            f" so nothing tells whether they are still right here.{_what_to_do(ref)}",
            ModelWarning,
            stacklevel=4,
        )
    return ref


def fingerprint_of(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _read_model(ref: ModelRef) -> bytes:
    """The bytes of ``ref``'s file, as they were when it was resolved."""
    try:
        data = Path(ref.path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {ref.path}: {exc.strerror or exc}") from None
    # Results are labelled and cached under the fingerprint read when the
    # run started: a file replaced since would give them another model's answers.
    if fingerprint_of(data) != ref.fingerprint:
        raise ModelError(
            f"{ref.path} changed while harken was using it (it is no longer"
            f" {ref.model_id}); run again"
        )
    return data


def unaudited_types(ref: ModelRef) -> list[str]:
    """The types in a model file that skops does not trust by default, before
    harken's allow-list (imports skops and scikit-learn)."""
    import skops.io as sio

    return sorted(sio.get_untrusted_types(data=_read_model(ref)))


def _untrusted_in(data: bytes) -> list[str]:
    import skops.io as sio

    return sorted(set(sio.get_untrusted_types(data=data)) - TRUSTED_TYPES)


def untrusted(ref: ModelRef, types: list[str]) -> ModelError:
    """The refusal of a model file that holds ``types``."""
    return ModelError(
        f"{ref.path} holds types harken does not trust: {', '.join(types)}."
        " Load it only if you trust its author (--trust-model)."
    )


def load_ensemble(ref: ModelRef, *, trust: bool = False, data: bytes | None = None) -> Any:
    """Load the fitted ensemble of a model file.

    Parameters
    ----------
    ref : ModelRef
    trust : bool
        Load even if the file holds types outside harken's allow-list.
    data : bytes, optional
        The file's bytes, when they were sent here instead of the file
        (a cluster worker that cannot read ``ref.path``).

    Raises
    ------
    ModelError
        The file holds untrusted types (and ``trust`` is false) or cannot be read.
    """
    import skops.io as sio
    from sklearn.exceptions import InconsistentVersionWarning
    from skops.io.exceptions import UntrustedTypesFoundException

    from analyzer.ensemble import VotingEnsemble

    if data is None:
        data = _read_model(ref)
    try:
        with warnings.catch_warnings():
            # scikit-learn warns for every estimator saved by another version of
            # it; whether the model still answers the same is checked below.
            warnings.simplefilter("ignore", InconsistentVersionWarning)
            if trust:
                loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
            else:
                # Trusting the allow-list up front parses the file once, not
                # twice: skops audits every type before it builds anything.
                loaded = sio.loads(data, trusted=sorted(TRUSTED_TYPES))
    except UntrustedTypesFoundException:
        raise untrusted(ref, _untrusted_in(data)) from None
    except Exception as exc:
        raise ModelError(
            f"{ref.path}: the model could not be loaded ({exc}).{_what_to_do(ref)}"
        ) from None
    if not isinstance(loaded, VotingEnsemble):
        raise ModelError(
            f"{ref.path} holds a {type(loaded).__name__}, not a harken ensemble;"
            " train a model with harken train"
        )
    _check_answers(loaded, ref)
    return loaded


def _check_answers(ensemble: Any, ref: ModelRef) -> None:
    """Refuse a model whose answers to its probe rows changed since it was saved."""
    from threadpoolctl import threadpool_limits

    try:
        # One thread, as for every prediction (``analysis.run_batch``): on a
        # busy machine, OpenMP's thread start-up made these 16 rows take seconds.
        with threadpool_limits(limits=1):
            drift = ensemble.answer_drift()
    except Exception as exc:
        raise ModelError(
            f"{ref.path}: the model fails to answer ({exc}).{_what_to_do(ref)}"
        ) from None
    if drift is None:  # saved before probes (``_resolve`` warned if built elsewhere)
        return
    if not drift <= ANSWER_TOLERANCE:  # NaN answers fail too
        raise ModelError(
            f"{ref.path} no longer gives the answers it was saved with (they differ by up to"
            f" {drift:.2g}).{_what_to_do(ref)}"
        )


def _built_elsewhere(ref: ModelRef) -> tuple[str, str] | None:
    """``(scikit-learn the model was built with, the one installed)`` when they
    differ; asks the installed package's metadata, so scikit-learn is not imported."""
    from importlib.metadata import version

    installed = version("scikit-learn")
    versions = ref.card.data.get("versions")
    built = versions.get("scikit-learn") if isinstance(versions, dict) else None
    return (str(built), installed) if built and built != installed else None


def _what_to_do(ref: ModelRef) -> str:
    """What to do when a model does not work here, naming the scikit-learn it
    was built with when that is not the one installed."""
    elsewhere = _built_elsewhere(ref)
    if elsewhere is None:
        return " Retrain it with harken train."
    built, installed = elsewhere
    return (
        f" It was built with scikit-learn {built}, this is {installed}: retrain it"
        f" here with harken train, or install scikit-learn=={built}."
    )


def save_model(ensemble: Any, path: str | Path, card: dict[str, Any]) -> ModelRef:
    """Write ``ensemble`` and its card to a skops file; returns its reference."""
    import skops.io as sio

    from analyzer.writers import replaced_when_done

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    full_card = {
        **card,
        "feature_code_version": FEATURE_CODE_VERSION,
        "answers_checked": hasattr(ensemble, "probe_rows_"),
    }
    with replaced_when_done(str(target)) as tmp:
        sio.dump(ensemble, tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
        with zipfile.ZipFile(tmp, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(CARD_MEMBER, json.dumps(full_card, indent=2, sort_keys=True))
    _resolve.cache_clear()
    return resolve_model(target)
