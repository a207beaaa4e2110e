"""`rashomon methods|explain|compare`: one method at a time, or the whole Compare view."""

from __future__ import annotations

import argparse

from core.analyses.granularity import DEFAULT_LEVEL, LEVELS, LevelError, comparison_at_level
from core.cli.common import (
    CliError,
    add_input_arguments,
    add_model_arguments,
    bound_to,
    engine,
    input_text,
    method_list,
    one_line_errors,
    print_json,
    progress_bar,
    require_text,
    runner_for,
)
from core.methods.base import ExplainError
from core.params import int_argument


def cmd_methods(args: argparse.Namespace) -> None:
    from core.methods.registry import METHODS

    if args.json:
        print_json([m.to_dict() for m in METHODS.values()])
        return
    for method in METHODS.values():
        print(f"{method.name:22} {method.title} ({'signed' if method.signed else 'unsigned'}, {method.family}, "
              f"{method.speed}{', random' if method.random else ''})")
        for option in method.options:
            extra = f" one of {', '.join(map(str, option.choices))}" if option.choices else ""
            print(f"    --option {method.name}.{option.name}={option.default!r} ({option.type}): {option.help}{extra}")


def parse_options(values: list[str] | None) -> dict[str, dict[str, str]]:
    """`--option lime.num_samples=200` pairs as {method: {option: value}} (values coerced by the method)."""
    options: dict[str, dict[str, str]] = {}
    for value in values or []:
        name, _, setting = value.partition(".")
        option, equals, raw = setting.partition("=")
        if not name or not option or not equals:
            raise CliError(f"Options are given as METHOD.OPTION=VALUE (e.g. lime.num_samples=200); got '{value}'.")
        options.setdefault(name, {})[option] = raw
    return options


def cmd_explain(args: argparse.Namespace) -> None:
    from core.analyses.store import explain_stored

    text = require_text(input_text(args))
    methods = method_list(args.methods)
    options = parse_options(args.option)
    runner = runner_for(bound_to(args.model, text))
    methods, skipped = _compatible(methods, runner, args.methods)
    db = engine()
    results = []
    with one_line_errors(ExplainError):
        for name in methods:
            params = dict(options.get(name, {}))
            if args.seed is not None and name in _seeded_methods():
                params.setdefault("seed", args.seed)
            results.append(explain_stored(db, runner, text, name, args.target, params, fresh=args.fresh,
                                          progress=None if args.json else progress_bar(name)))
    first = results[0].explanation
    per_token = []
    if args.per_token:
        from core.analyses.token_view import NoTokens, token_view

        with one_line_errors(NoTokens, ExplainError):
            per_token = [token_view(db, runner, text, name, options.get(name)) for name in methods]
    if args.json:
        print_json({
            "per_token": [view.to_dict() for view in per_token],
            "model": runner.loaded.describe(),
            "text": first.text,
            "prediction": {"label": first.predicted_label, "probabilities": first.probabilities},
            "truncated": first.truncated_words,
            "explanations": [{**r.explanation.to_dict(), "cached": r.cached} for r in results],
            "incompatible": skipped,
        })
        return
    print(_outputs_line(runner, first.predicted_label, first.probabilities))
    _print_skipped(skipped)
    if first.truncated_words:
        print(f"Note: the input was truncated to fit the model; {first.truncated_words} words were dropped.")
    for r in results:
        e = r.explanation
        top = sorted(zip(e.words, e.scores, strict=True), key=lambda ws: -abs(ws[1]))[:5]
        print(f"{e.method:22} target={e.target} {e.seconds:7.3f}s {e.forward_passes:5d} passes"
              f"{' (stored)' if r.cached else ''}  top: " + ", ".join(f"{w} {s:+.3f}" for w, s in top))
    for view in per_token:
        print(f"{view.method}, per generated token (the top prompt words for each):")
        for token, row in zip(view.tokens, view.scores, strict=True):
            top = sorted(zip(view.words, row, strict=True), key=lambda ws: -abs(ws[1]))[:5]
            print(f"  {token:24} " + ", ".join(f"{w} {s:+.3f}" for w, s in top))


def _compatible(methods: list[str], runner, asked: str | None) -> tuple[list[str], dict[str, str]]:
    """The methods to run on this model and those left out with the reason: named methods that cannot explain
    it are an error; the default list (every method) drops them and says why."""
    from core.methods.registry import split_compatible

    kept, skipped = split_compatible(methods, runner.loaded)
    if skipped and asked is not None:
        name, reason = next(iter(skipped.items()))
        raise CliError(f"{name} cannot explain {runner.loaded.name}: {reason}.")
    if not kept:
        raise CliError(f"No method can explain {runner.loaded.name}.")
    return kept, skipped


def _outputs_line(runner, predicted: str, outputs: dict[str, float]) -> str:
    """The prediction, or for a model whose outputs are values (a continuation's log-probabilities) the values."""
    from core.engine.modelling import VALUES

    listed = ", ".join(f"{k} {v:.3f}" for k, v in outputs.items())
    return f"Log-probabilities: {listed}" if runner.loaded.outputs == VALUES else f"Prediction: {predicted} {listed}"


def _print_skipped(skipped: dict[str, str]) -> None:
    for name, reason in skipped.items():
        print(f"Left out {name}: {reason}.")


def _seeded_methods() -> set[str]:
    from core.methods.registry import METHODS

    return {m.name for m in METHODS.values() if any(o.name == "seed" for o in m.options)}


def cmd_compare(args: argparse.Namespace) -> None:
    from core.analyses import compare
    from core.analyses.reports import run_report

    text = require_text(input_text(args))
    methods = method_list(args.methods)
    options = parse_options(args.option)
    if args.k < 1:
        raise CliError("k must be at least 1.")
    runner = runner_for(bound_to(args.model, text))
    methods, skipped = _compatible(methods, runner, args.methods)
    bars: dict = {}

    def report_progress(name: str, fraction: float, message: str) -> None:
        bars.setdefault(name, progress_bar(name))(fraction, message)

    with one_line_errors(ExplainError):
        report = run_report(engine(), runner, text, methods, options, args.target, fresh=args.fresh,
                            progress=None if args.json else report_progress)
    leveled = None
    if args.level != DEFAULT_LEVEL:
        prepared = runner.prepare(report.comparison.text)  # no model pass: where each token sits
        with one_line_errors(LevelError):
            leveled = comparison_at_level(report.comparison, args.level, prepared.token_offsets, prepared.special_mask)
    if args.json:
        from core.analyses.known_answer import citation
        from core.analyses.verdict import gather

        data = compare.report_to_dict(report, args.k, gather(engine(), runner, report, args.k, options),
                                      at_level=leveled, level=args.level)
        from core.analyses.reports import stored_report_row

        cited = citation(engine(), runner.loaded.fingerprint)
        if data.get("verdict") is not None:
            data["verdict"]["known_answer"] = cited  # the verdict cites a planted-shortcut check of this model
        row = stored_report_row(engine(), runner, text, methods, options, args.target)
        print_json({**data, "known_answer": cited, "comparison_id": row[0] if row else None,
                    "requested_by": row[1] if row else None, "model": runner.loaded.describe(),
                    "incompatible": skipped})
        return
    comparison = report.comparison
    print(_outputs_line(runner, comparison.predicted_label, comparison.probabilities)
          + f"; explaining {comparison.target}")
    _print_skipped(skipped)
    if leveled is not None:
        print(f"Top units by {args.level} ({LEVELS[args.level]}):")
    for method, words in compare.top_words(leveled or comparison, args.k).items():
        print(f"{method:22} " + ", ".join(f"{w} {s:+.3f}" for w, s in words))
    print("Faithfulness (comprehensiveness AOPC, higher is better / sufficiency AOPC, lower is better):")
    for f in report.faithfulness:
        print(f"  {f.method:22} {f.aopc_comprehensiveness:+.4f} / {f.aopc_sufficiency:+.4f}")
    for line in compare.summarise(report, args.k):
        print("- " + compare.plain(line))
    print(f"This view cost {report.cost_now.forward_passes} model passes now"
          + (" (everything came from the store)." if report.from_store else "."))


def add_commands(sub: argparse._SubParsersAction) -> None:
    methods = sub.add_parser("methods", help="list explanation methods and their options")
    methods.add_argument("--json", action="store_true")
    methods.set_defaults(func=cmd_methods)

    explain = sub.add_parser("explain", help="explain a prediction with several methods")
    add_input_arguments(explain)
    add_model_arguments(explain)
    explain.add_argument("--methods", help="comma-separated (default: all)")
    explain.add_argument("--option", action="append", help="METHOD.OPTION=VALUE, repeatable")
    explain.add_argument("--target", help="label to explain (default: the predicted one)")
    explain.add_argument("--seed", type=int_argument("seed", 0, 4_294_967_295), help="seed for the random methods (default: their own, 0)")
    explain.add_argument("--fresh", action="store_true", help="recompute even if a stored result exists")
    explain.add_argument("--per-token", action="store_true", help="a continuation: also explain each generated "
                                                                   "token's log-probability (which prompt words drove it)")
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(func=cmd_explain)

    compare = sub.add_parser("compare", help="the Compare page's view: explanations, agreement, faithfulness, "
                                             "attention checks and summary")
    add_input_arguments(compare)
    add_model_arguments(compare)
    compare.add_argument("--methods", help="comma-separated (default: all)")
    compare.add_argument("--option", action="append", help="METHOD.OPTION=VALUE, repeatable")
    compare.add_argument("--target", help="label to explain (default: the predicted one)")
    compare.add_argument("--k", type=int_argument("k", 1, 1_000), default=5, help="top words compared (default 5)")
    compare.add_argument("--fresh", action="store_true", help="recompute even if stored results exist")
    compare.add_argument("--level", choices=list(LEVELS), default=DEFAULT_LEVEL,
                         help="units scores are shown and agreement is computed on: token, word (default), sentence "
                              "or paragraph (sums of the words' scores)")
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=cmd_compare)
