"""``harken train``, ``harken evaluate`` and ``harken model show``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from analyzer.featureconfig import MAX_PARTS
from cli.options import CountRange, NumberRange, cache_dir_option, format_option, print_json
from cli.scan import (
    HarkenUsageError,
    OutputError,
    check_output_folder,
    refuse_one_file_twice,
    warnings_to,
)

DEFAULT_MEMBERS = "logreg,svm,extra_trees,gboost"
#: Parts of a clip's contour (``analyzer.contour``). Three: on an ESC-10-like
#: set 0.767 -> 0.778 (within the folds' spread), and words told apart by
#: speakers not trained on (synthetic spoken digits, leave-one-speaker-out)
#: 0.836 -> 0.896. Not for the default model: sources it never heard scored
#: 0.857 -> 0.844 (DESIGN.md).
TRAIN_CONTOUR_PARTS = 3


def _dataset(
    data: str | None, manifest: str | None, group_pattern: str | None, *, min_classes: int
) -> Any:
    from analyzer.dataset import load_dataset
    from analyzer.errors import HarkenError
    from cli.render import make_console

    try:
        dataset = load_dataset(
            data, manifest=manifest, group_pattern=group_pattern, min_classes=min_classes
        )
    except HarkenError as exc:
        raise HarkenUsageError(str(exc)) from None
    err = make_console(stderr=True)
    for warning in dataset.warnings:
        err.print(f"WARNING: {warning}")
    return dataset


def _model_name(name: str) -> str:
    """A name that shows as one word in ids, tables and CSV cells."""
    if not name.strip() or any(not c.isprintable() for c in name):
        raise click.BadParameter(
            f"{name!r}: a model needs a name, without control characters", param_hint="--name"
        )
    return name.strip()


def _refuse_unknown_label(dataset: Any) -> None:
    """No class may be called ``unknown``: a model cannot learn it, and an
    evaluation would count every unsure answer on it as right."""
    from analyzer.scan import UNKNOWN

    if UNKNOWN in dataset.classes:
        raise HarkenUsageError(
            f"the label {UNKNOWN!r} is what harken calls a result below"
            " --min-confidence; give that class another name"
        )


def _progress(total: int, quiet: bool) -> tuple[Any, Callable[[bool], None]]:
    from cli.progress import ScanProgress
    from cli.render import make_console

    progress = ScanProgress(make_console(stderr=True), total, enabled=not quiet)
    return progress, lambda cached: progress.advance(cached=cached, failed=False)


def _cache_dir(cache_dir: str | None, no_cache: bool) -> str | None:
    from analyzer.cache import default_cache_dir

    return None if no_cache else (cache_dir or default_cache_dir())


data_options = [
    click.argument("data", required=False, type=click.Path(exists=True, file_okay=False)),
    click.option(
        "--manifest",
        type=click.Path(exists=True, dir_okay=False),
        help="A CSV with columns path,label[,group][,fold] instead of DATA.",
    ),
    click.option(
        "--group-pattern",
        metavar="REGEX",
        help="Group clips by this match in their file names (first group).",
    ),
    click.option("-j", "--jobs", type=CountRange(min=1), help="Worker processes."),
    cache_dir_option,
    click.option("--no-cache", is_flag=True, help="Neither read nor write the cache."),
    format_option("table", "json"),
    click.option("-q", "--quiet", is_flag=True, help="No progress."),
]


def with_data_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(data_options):
        fn = option(fn)
    return fn


@click.command("train")
@with_data_options
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the model (.skops).",
)
@click.option(
    "--members",
    default=DEFAULT_MEMBERS,
    show_default=True,
    help="Ensemble members, comma-separated: logreg, svm, extra_trees, gboost.",
)
@click.option(
    "--cv",
    type=CountRange(min=2),
    default=5,
    show_default=True,
    help="Cross-validation folds (ignored when the manifest has a fold column).",
)
@click.option(
    "--augment",
    type=CountRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Add N altered copies of every training clip (cut short, band-limited,"
    " reverberated, noised, re-levelled)"
    " to every fit, and score again on test clips band-limited to 4 kHz.",
)
@click.option(
    "--contour",
    type=CountRange(min=0, max=MAX_PARTS),
    default=TRAIN_CONTOUR_PARTS,
    show_default=True,
    metavar="N",
    help="Cut each clip's sound into N parts in time and add each part's spectral"
    " envelope and level: the order of a word's sounds, an event's course (0: none;"
    " the default model has none).",
)
@click.option(
    "--folds-from",
    metavar="COLUMN",
    help="A manifest column whose every value is one test fold, e.g. 'source' for"
    " leave-one-source-out (overrides --cv and the fold column).",
)
@click.option(
    "--cv-predictions",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Also write every clip's out-of-fold prediction to FILE (CSV), for error analysis.",
)
@click.option(
    "--note",
    metavar="TEXT",
    help="A line about the training data for the model card (its source, its licences).",
)
@click.option(
    "--name",
    default="harken-model",
    show_default=True,
    callback=lambda ctx, param, value: _model_name(value),
    help="Model name (in its id, NAME@fingerprint, and every result's 'model').",
)
def train_command(
    data: str | None,
    manifest: str | None,
    group_pattern: str | None,
    jobs: int | None,
    cache_dir: str | None,
    no_cache: bool,
    format: str,
    quiet: bool,
    output: str,
    members: str,
    cv: int,
    augment: int,
    contour: int,
    folds_from: str | None,
    cv_predictions: str | None,
    note: str | None,
    name: str,
) -> None:
    """Train an ensemble on labeled audio: DATA has a folder per class.

    Cross-validates first (clips of one group never on both sides of a fold),
    reports per member and for the ensemble, then fits on everything.
    """
    from analyzer.ensemble import MEMBER_NAMES
    from analyzer.errors import HarkenError
    from analyzer.modelfile import save_model
    from analyzer.pool import default_jobs
    from analyzer.training import train
    from cli.render import failures, make_console, training_report

    chosen = tuple(m.strip() for m in members.split(",") if m.strip())
    unknown = sorted(set(chosen) - set(MEMBER_NAMES))
    if unknown or not chosen:
        raise click.BadParameter(
            f"unknown member(s) {', '.join(unknown) or '(none)'};"
            f" choose from {', '.join(MEMBER_NAMES)}",
            param_hint="--members",
        )
    if twice := sorted({m for m in chosen if chosen.count(m) > 1}):
        raise click.BadParameter(
            f"{', '.join(twice)} named more than once (an ensemble has one of each member)",
            param_hint="--members",
        )
    if folds_from and not manifest:
        raise click.UsageError("--folds-from needs --manifest (it names one of its columns)")
    if output == "-":
        raise click.BadParameter(
            "a model is written to a file: give its name", param_hint="--output"
        )
    check_output_folder(output, "--output", create=True)  # save_model would make it
    if cv_predictions:
        check_output_folder(cv_predictions, "--cv-predictions", create=True)
    refuse_one_file_twice((output, "--output"), (cv_predictions, "--cv-predictions"))
    dataset = _dataset(data, manifest, group_pattern, min_classes=2)
    if not folds_from:  # --folds-from replaces the fold column
        try:
            dataset.check_folds()
        except HarkenError as exc:
            raise HarkenUsageError(str(exc)) from None
    _refuse_unknown_label(dataset)
    err = make_console(stderr=True)
    if not dataset.grouped and not dataset.folded and not folds_from and not group_pattern:
        err.print(
            "WARNING: no groups (a manifest 'group' column, or a --group-pattern that"
            " matches file names): clips"
            " cut from one recording may land on both sides of a fold, and the scores"
            " below may be too optimistic."
        )
    progress, tick = _progress(len(dataset.clips), quiet)
    try:
        with progress:
            trained = train(
                dataset,
                members=chosen,
                cv=cv,
                jobs=jobs or default_jobs(),
                cache_dir=_cache_dir(cache_dir, no_cache),
                name=name,
                augment=augment,
                folds_from=folds_from,
                contour_parts=contour,
                on_done=tick,
            )
    except HarkenError as exc:
        raise HarkenUsageError(str(exc)) from None
    if trained.report["identical_clips_across_folds"]:
        err.print(
            f"WARNING: {trained.report['identical_clips_across_folds']} clips have a"
            " byte-identical copy in another of the given folds: the scores may be too"
            " optimistic."
        )
    if conflicting := trained.report["identical_clips_with_other_labels"]:
        shown = "; ".join(conflicting[:4]) + ("; ..." if len(conflicting) > 4 else "")
        err.print(
            f"WARNING: {len(conflicting)} clips are byte-identical to a clip with another"
            f" label, and were trained as both: {shown}",
            markup=False,
            highlight=False,
        )
    if trained.report["identical_clips_joined"]:
        err.print(
            f"note: {trained.report['identical_clips_joined']} clips are byte-identical to"
            " a clip of another group; each such set was made one group"
        )
    folds = trained.report["folds"]
    if trained.report["fold_source"] in ("grouped", "files") and folds < cv:
        err.print(f"note: {folds} folds, not {cv}: a class has only {folds} groups")
    card = trained.card
    if note:
        card = {**card, "training": {**card["training"], "data": note}}
    target = output
    try:
        ref = save_model(trained.ensemble, output, card)
        if cv_predictions:
            target = cv_predictions
            _write_predictions(trained.predictions, cv_predictions)
    except OSError as exc:
        raise OutputError(f"could not write {target}: {exc.strerror or exc}") from None
    report = {**trained.report, "model": ref.model_id, "output": output}
    failures(err, report)
    if format == "json":
        print_json(report)
    else:
        training_report(make_console(stderr=False), report)
        err.print(f"model written to {output} ({ref.model_id})")


def _write_predictions(rows: list[dict[str, Any]], path: str) -> None:
    import csv

    from analyzer.writers import atomic_output

    with atomic_output(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["path"])
        writer.writeheader()
        writer.writerows(rows)


@click.command("evaluate")
@with_data_options
@click.option(
    "--model",
    type=click.Path(exists=True, dir_okay=False),
    help="A .skops model [default: the shipped model].",
)
@click.option("--trust-model", is_flag=True, help="Load a model with untrusted types.")
@click.option(
    "--min-confidence",
    type=NumberRange(0, 1),
    help="Score the answers as a scan with this threshold gives them, below it"
    " `unknown` [default: the model card's].",
)
def evaluate_command(
    data: str | None,
    manifest: str | None,
    group_pattern: str | None,
    jobs: int | None,
    cache_dir: str | None,
    no_cache: bool,
    format: str,
    quiet: bool,
    model: str | None,
    trust_model: bool,
    min_confidence: float | None,
) -> None:
    """Score a model on labeled audio: metrics and the worst mistakes."""
    from analyzer.errors import HarkenError
    from analyzer.modelfile import resolve_model
    from analyzer.pool import default_jobs
    from analyzer.training import evaluate
    from cli.render import failures, make_console, training_report

    dataset = _dataset(data, manifest, group_pattern, min_classes=1)
    _refuse_unknown_label(dataset)
    progress, tick = _progress(len(dataset.clips), quiet)
    try:
        with progress, warnings_to(make_console(stderr=True)):
            report = evaluate(
                dataset,
                resolve_model(model),
                jobs=jobs or default_jobs(),
                cache_dir=_cache_dir(cache_dir, no_cache),
                trust_model=trust_model,
                min_confidence=min_confidence,
                on_done=tick,
            )
    except HarkenError as exc:
        raise HarkenUsageError(str(exc)) from None
    failures(make_console(stderr=True), report)
    if format == "json":
        print_json(report)
    else:
        training_report(make_console(stderr=False), report)


@click.group("model")
def model_group() -> None:
    """Inspect model files."""


@model_group.command("show")
@click.argument("model", required=False, type=click.Path(exists=True, dir_okay=False))
@format_option("table", "json")
def model_show(model: str | None, format: str) -> None:
    """Show a model's card (the shipped model when MODEL is omitted)."""
    from analyzer.errors import HarkenError
    from analyzer.modelfile import resolve_model
    from cli.render import make_console, model_card

    unusable = None
    try:
        with warnings_to(make_console(stderr=True)):
            ref = resolve_model(model)
        card = {**ref.card.data, "fingerprint": ref.fingerprint, "id": ref.model_id}
        card["path"] = ref.path
    except HarkenError as exc:
        # A model this harken cannot use (another feature code) still has a
        # card worth reading: its classes and data, to retrain it.
        card, unusable = _card_anyway(model, exc), str(exc)
    if format == "json":
        print_json({**card, "usable": not unusable, **({"error": unusable} if unusable else {})})
    else:
        model_card(make_console(stderr=False), card)
    if unusable:
        raise HarkenUsageError(f"harken cannot use this model: {unusable}")


def _card_anyway(model: str | None, error: Exception) -> dict[str, Any]:
    """The card of a model file that cannot be used, if it has a whole one."""
    from analyzer.errors import HarkenError
    from analyzer.modelfile import ModelCard, ModelRef, read_card

    if model is None:
        raise HarkenUsageError(str(error)) from None
    try:
        card, fingerprint = read_card(model)
    except HarkenError:
        raise HarkenUsageError(str(error)) from None
    names = [card.get("classes"), card.get("members")]
    whole = all(isinstance(n, list) and all(isinstance(x, str) for x in n) for n in names)
    if not whole or not isinstance(card.get("feature_config"), dict):
        raise HarkenUsageError(str(error)) from None  # (what the table shows is not there)
    ref = ModelRef(path=os.path.realpath(model), fingerprint=fingerprint, card=ModelCard(card))
    return {**card, "fingerprint": fingerprint, "id": ref.model_id, "path": ref.path}
