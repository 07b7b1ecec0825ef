"""The `earmark` command line: a thin shell over :class:`earmark.Library`.

Each command parses its arguments, calls one library function and prints the result as a
table or, with ``--json``, as JSON. Exit codes: 0 success; 1 finished, but some files failed;
2 bad usage or a malformed query; 3 the library, store or encoder cannot be used; 4 another
process is writing to the library.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable

import click

from .engine.query.rank import AGGREGATES, DEFAULT_RANKING, RANKINGS
from .engine.user_cache import cache_root

EXIT_FILES_FAILED = 1
EXIT_USAGE = 2
EXIT_LIBRARY = 3
EXIT_LOCKED = 4


def _print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


def _console():
    from rich.console import Console

    return Console(soft_wrap=False)


def handle_errors(fn: Callable) -> Callable:
    """Turn earmark's named exceptions into one clear line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .engine.concepts.errors import DictionaryError, SolverError
        from .engine.encoders import EncoderError
        from .engine.library import LibraryError
        from .engine.query.parse import QuerySyntaxError, UnknownConceptError
        from .engine.evidence.errors import EvidenceError
        from .vocabularies import VocabularyError
        from .engine.lock import LibraryLocked
        from .index.db import StoreError
        from .index.milvus import MilvusError
        from sqlalchemy.exc import SQLAlchemyError
        from .engine.bench.errors import BenchError

        try:
            return fn(*args, **kwargs)
        except BenchError as exc:
            click.echo(f"earmark: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except UnknownConceptError as exc:
            click.echo(f"earmark: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except QuerySyntaxError as exc:
            click.echo(f"earmark: bad query: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except LibraryLocked as exc:
            click.echo(f"earmark: {exc}", err=True)
            sys.exit(EXIT_LOCKED)
        except (LibraryError, StoreError, EncoderError, VocabularyError, DictionaryError, SolverError,
                EvidenceError, FileNotFoundError, MilvusError) as exc:
            click.echo(f"earmark: {exc}", err=True)
            sys.exit(EXIT_LIBRARY)
        except (OSError, SQLAlchemyError) as exc:  # disk full, read-only library: one line, not a traceback
            from .index.write_errors import describe_write_error

            message = describe_write_error(exc, kwargs.get("library_path"))
            if message is None:
                raise
            click.echo(f"earmark: {message}", err=True)
            sys.exit(EXIT_LIBRARY)

    return wrapper


def _library_option(fn: Callable) -> Callable:
    return click.option(
        "--library", "-L", "library_path", type=click.Path(path_type=Path), envvar="EARMARK_LIBRARY",
        default="earmark-library", show_default=True, help="Library directory (or set EARMARK_LIBRARY).",
    )(fn)


def _json_option(fn: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def open_library(path: Path, migrate: bool = False):
    from .engine.library import Library

    return Library(path, migrate=migrate)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="earmark")
def main() -> None:
    """earmark: find sounds by text, by concepts or by example, and hear why they matched."""


@main.command()
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.option("--encoder", default="embedded", show_default=True,
              help="Encoder spec: embedded, hf:DIR_OR_HUB_ID, laion:FILE.pt or py:module:attr.")
@click.option("--hop", type=float, default=None, help="Hop between windows in seconds (default: half a window).")
@click.option("--vocabulary", default=None, help="Concept vocabulary: baseline, pruned (default), clustered or a file.")
@click.option("--lam", type=float, default=None, help="Sparsity λ of concept codes (default 0.15; 0.05 gives more concepts).")
@click.option("--target-l0", type=int, default=None, help="Aim for this many concepts per window instead of a fixed λ.")
@click.option("--backend", type=click.Choice(["faiss", "milvus"]), default="faiss", show_default=True,
              help="Where the indexes live: FAISS files in the library, or a Milvus collection.")
@click.option("--milvus-uri", default=None, help="Milvus Lite file (lib/milvus.db) or server (http://host:19530).")
@click.option("--milvus-index", default="FLAT", show_default=True,
              help="Milvus dense index type: FLAT (exact), IVF_FLAT, IVF_SQ8, IVF_PQ, HNSW.")
@click.option("--milvus-fusion", type=click.Choice(["earmark", "rrf", "weighted"]), default=None,
              help="Fusion on Milvus: earmark's RRF (default), or Milvus hybrid_search with RRFRanker/WeightedRanker.")
@click.option("--db-url", default=None,
              help="Metadata store on a database server, e.g. postgresql+psycopg://user@host/db (default: earmark.db).")
@_library_option
@handle_errors
def init(path: Path | None, encoder: str, hop: float | None, vocabulary: str | None, lam: float | None,
         target_l0: int | None, backend: str, milvus_uri: str | None, milvus_index: str, milvus_fusion: str | None,
         db_url: str | None, library_path: Path) -> None:
    """Create a new library (PATH, or --library)."""
    from .engine.library import Library

    lib = Library.init(path or library_path, encoder=encoder, hop_seconds=hop, vocabulary=vocabulary, lam=lam,
                       target_l0=target_l0, backend=backend, milvus_uri=milvus_uri, milvus_index=milvus_index,
                       milvus_fusion=milvus_fusion, db_url=db_url)
    enc = lib.encoder
    click.echo(f"created library {lib.path} (encoder {enc.name}, {enc.dim}-d, {enc.window_seconds:g} s windows, "
               f"fingerprint {enc.fingerprint}; {lib.backend} indexes)")


def _echo_file_problems(missing: list[str], failed: list, missing_hint: str = "") -> None:
    """The files an indexing or re-embedding run could not find or read, one per line."""
    for p in missing:
        click.echo(f"  missing {p}{missing_hint}")
    for f in failed:
        click.echo(f"  FAILED  {f.path}: {f.reason}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--include", multiple=True, help="Glob of files to index (repeatable); default: audio extensions.")
@click.option("--exclude", multiple=True, help="Glob of files to skip (repeatable).")
@click.option("--workers", "-j", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Threads decoding files ahead of the encoder.")
@click.option("--prune", is_flag=True, help="Mark sounds whose files are gone as removed.")
@click.option("--wait", is_flag=True, help="Wait for another writer instead of failing.")
@click.option("--faiss", "factory", default=None,
              help='FAISS index type for this library ("Flat", "HNSW32", "IVF4096,Flat"); default: by size.')
@_library_option
@_json_option
@handle_errors
def index(paths: tuple[Path, ...], include: tuple[str, ...], exclude: tuple[str, ...], workers: int,
          prune: bool, wait: bool, factory: str | None, library_path: Path, as_json: bool) -> None:
    """Index sound files and folders (unchanged files are skipped)."""
    lib = open_library(library_path)
    if factory:
        lib.set_faiss_factory(factory)
    report = lib.index(list(paths), include=include, exclude=exclude, workers=workers, prune=prune,
                       progress=not as_json and sys.stderr.isatty(), wait=wait)
    if as_json:
        _print_json(report.to_dict())
    else:
        click.echo(f"{report.scanned} files seen: {report.added} added, {report.updated} updated, "
                   f"{report.duplicates} duplicates, {len(report.moved)} moved, {report.unchanged} unchanged, "
                   f"{len(report.failed)} failed, {report.pruned} pruned; {report.segments} segments "
                   f"in {report.seconds:.1f} s")
        for old, new in report.moved:
            click.echo(f"  moved   {old} -> {new}")
        _echo_file_problems(report.missing, report.failed, " (run with --prune to remove)")
    if report.failed:
        sys.exit(EXIT_FILES_FAILED)


@main.command()
@click.option("--encoder", "spec", default=None,
              help="Encoder spec to move the library to; default: the library's own, as this earmark loads it.")
@click.option("--workers", "-j", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Threads decoding files ahead of the encoder.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before dropping the old encoder's vectors.")
@click.option("--wait", is_flag=True, help="Wait for another writer instead of failing.")
@_library_option
@_json_option
@handle_errors
def reembed(spec: str | None, workers: int, yes: bool, wait: bool, library_path: Path, as_json: bool) -> None:
    """Embed the library's sounds again: after an earmark upgrade changed the encoder's weights,
    to move to another encoder (--encoder), or to fill what older versions did not store.

    Resumable: a run stopped midway is continued by running it again."""
    from .engine.encoders import load_encoder

    lib = open_library(library_path)
    rec = lib.encoder_record()
    target = load_encoder(spec or rec.name)

    def confirm_drop() -> None:  # asked only when the new encoder's audio vectors differ from the stored ones
        n = lib.status().sounds_indexed
        click.confirm(f"{lib.path} holds vectors of {rec.name} ({rec.fingerprint}); {target.name} has fingerprint "
                      f"{target.fingerprint}. Drop the vectors of its {n} indexed sounds and embed them again "
                      "(searchable again as they are done)?", abort=True, err=True)

    rep = lib.reembed(target, workers=workers, progress=not as_json and sys.stderr.isatty(), wait=wait,
                      confirm_drop=None if yes else confirm_drop)
    if as_json:
        _print_json(rep.to_dict())
    else:
        what = (f"moved from {rep.previous_encoder} ({rep.previous_fingerprint}) to {rep.encoder} ({rep.fingerprint})"
                + (", vectors kept" if rep.kept_vectors else "")
                if rep.switched
                else f"encoder {rep.encoder} ({rep.fingerprint})")
        click.echo(f"{what}: {rep.reembedded} of {rep.sounds} sounds embedded again, {rep.segments} segments, "
                   f"{len(rep.failed)} failed, {len(rep.missing)} missing, {rep.pending} pending, "
                   f"in {rep.seconds:.1f} s")
        _echo_file_problems(rep.missing, rep.failed)
        for note in rep.notes:
            click.echo(f"  note: {note}")
    if rep.failed:
        sys.exit(EXIT_FILES_FAILED)


@main.command()
@_library_option
@_json_option
@handle_errors
def status(library_path: Path, as_json: bool) -> None:
    """Show a library's counts, encoder, concepts, indexes, evidence decoder and disk use."""
    st = open_library(library_path).status()
    if as_json:
        _print_json(st.to_dict())
        return
    for key, value in _status_lines(st):
        click.echo(f"{key:10} {value}")


def _bytes(n: float) -> str:
    """A size in decimal units: "532 B", "4.0 MB"."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} GB"


def _status_lines(st) -> list[tuple[str, str]]:
    """`earmark status` as a few readable lines (``--json`` has every field by name)."""
    secs = round(st.hours_indexed * 3600)
    audio = f"{secs // 3600} h {secs % 3600 // 60:02d} min" if secs >= 3600 else f"{secs // 60} min {secs % 60} s"
    lines = [("library", f"{st.path}  (schema {st.schema_revision}, data version {st.data_version})"),
             ("encoder", f"{st.encoder}  {st.encoder_fingerprint}"),
             ("roots", ", ".join(st.roots) or "none yet"),
             ("sounds", f"{st.sounds_indexed} indexed, {st.sounds_pending} pending, {st.sounds_failed} failed, "
                        f"{st.sounds_removed} removed  ({audio} of audio in {st.segments} windows"
                        + (f"; last indexed {st.last_indexed.replace('T', ' ')[:19]} UTC)" if st.last_indexed else ")"))]
    if st.vocabulary is None:
        lines.append(("concepts", "no codebook yet (made when the first sounds are indexed)"))
    else:
        sparsity = f"target L0 {st.target_l0}" if st.target_l0 else f"λ {st.lam:g}"
        adapter = f", adapter {st.adapter[:12]}" if st.adapter else ""
        coded = (f"; {st.codes} windows coded, {st.mean_l0:.1f} concepts each, fidelity {st.mean_fidelity:.2f}"
                 if st.codes else "; no window coded yet")
        lines.append(("concepts", f"{st.vocabulary} vocabulary ({st.concepts} concepts), {sparsity}{adapter}{coded}"))
    if st.index_backend == "faiss":
        parts = [f"{kind} #{g['generation']} {g['factory'] or ''} {g['vectors']} vectors".replace("  ", " ")
                 for kind, g in sorted(st.indexes.items())]
        lines.append(("indexes", f"FAISS files ({st.faiss_factory}): " + ("; ".join(parts) or "none written yet")))
    else:
        lines.append(("indexes", f"{st.index_backend} (`earmark backend status` for details)"))
    lines.append(("evidence", {"library": "L-MAC, the library's own decoder (`earmark evidence train`)",
                               "shipped": "L-MAC, the decoder shipped with the embedded encoder",
                               "none": "gradient saliency until `earmark evidence train` makes a decoder"}
                  [st.evidence_decoder]))
    disk = st.disk_bytes
    lines.append(("disk", f"{_bytes(disk['total'])}  (" + ", ".join(
        f"{part} {_bytes(n)}" for part, n in disk.items() if part != "total" and n) + ")"))
    return lines


@main.command(name="ls")
@click.option("--status", "status_filter", type=click.Choice(["indexed", "pending", "failed", "removed"]), default=None)
@click.option("--limit", type=int, default=None)
@_library_option
@_json_option
@handle_errors
def ls(status_filter: str | None, limit: int | None, library_path: Path, as_json: bool) -> None:
    """List sounds."""
    sounds = open_library(library_path).sounds(status=status_filter, limit=limit)
    if as_json:
        _print_json([s.to_dict() for s in sounds])
        return
    from rich.table import Table

    if sounds:
        click.echo(f"in {', '.join(_roots_of(sounds))}")
    errors = any(s.error for s in sounds)
    # Paths relative to their root, cut from the left so the file name shows (--json: whole paths).
    path_width = max(24, _console().width - (75 if errors else 45))
    table = Table("id", "status", "dur (s)", "Hz", "ch", "segs", "path", *(("error",) if errors else ()), box=None)
    for s in sounds:
        table.add_row(str(s.id), s.status, f"{s.duration:.2f}" if s.duration else "-", str(s.sample_rate or "-"),
                      str(s.channels or "-"), str(s.segments), _path_tail(s.path, path_width),
                      *((s.error or "",) if errors else ()))
    _console().print(table)


@main.command()
@click.argument("sounds", nargs=-1, required=True)
@_library_option
@handle_errors
def rm(sounds: tuple[str, ...], library_path: Path) -> None:
    """Forget sounds (by id or path); files on disk are not touched."""
    removed = open_library(library_path).remove(list(sounds))
    for s in removed:
        click.echo(f"removed {s.id} {s.abs_path}")


@main.command()
@click.option("--repair", is_flag=True, help="Rebuild the derived indexes from the database.")
@_library_option
@_json_option
@handle_errors
def check(repair: bool, library_path: Path, as_json: bool) -> None:
    """Verify a library's consistency (database and index files)."""
    rep = open_library(library_path).check(repair=repair)
    if as_json:
        _print_json(rep.to_dict())
    else:
        for item in rep.checked:
            click.echo(f"checked  {item}")
        for item in rep.repaired:
            click.echo(f"repaired {item}")
        for item in rep.problems:
            click.echo(f"PROBLEM  {item}")
        click.echo("library is consistent" if rep.ok else f"{len(rep.problems)} problem(s) found")
    if not rep.ok:
        sys.exit(EXIT_LIBRARY)


def _bar(value: float, scale: float, width: int = 12) -> str:
    n = 0 if scale <= 0 else int(round(width * max(value, 0.0) / scale))
    return "█" * n + "·" * (width - n)


# In the table view, a concept below this share of the largest weight or contribution on screen is
# noise at a glance (a weak hit's "best" concept can be 1 % of the top one); --json and
# `earmark explain` keep every number, so the contributions there still add up.
MINOR_SHARE = 0.1


def major(values: list[float], scale: float, share: float = MINOR_SHARE) -> list[bool]:
    """Which values are at least ``share`` of ``scale`` in size (all of them if scale is 0)."""
    if scale <= 0:
        return [True] * len(values)
    return [abs(v) >= share * scale for v in values]


def _roots_of(items) -> list[str]:
    """The root folders of sounds or hits (each has ``abs_path`` and its root-relative ``path``)."""
    return sorted({x.abs_path[: len(x.abs_path) - len(x.path)].rstrip("/") for x in items})


def _path_tail(path: str, width: int) -> str:
    """``path`` cut to ``width`` characters from the left, at a folder boundary where one fits."""
    if len(path) <= width:
        return path
    tail = path[-(width - 2):]
    cut = tail.find("/")
    return "…/" + (tail[cut + 1:] if 0 <= cut < len(tail) - 1 else tail)


def print_result(result, as_json: bool) -> None:
    """A search result as a table (score, file, best window, matched concepts as bars) or JSON."""
    if as_json:
        _print_json(result.to_dict())
        return
    from rich.table import Table

    q = result.query
    keep = major([c.weight for c in q.concepts], max((abs(c.weight) for c in q.concepts), default=0.0))
    listed = [c for c, k in zip(q.concepts, keep) if k][:8]
    understood = ", ".join(f"{c.concept} {c.weight:+.2f}" for c in listed) or "(no concept form)"
    if len(q.concepts) > len(listed):
        understood += f" (+{len(q.concepts) - len(listed)} more)"
    click.echo(f"query: {q.text!r}  ranking: {q.ranking}/{q.aggregate}  understood as: {understood}")
    for note in q.notes:
        click.echo(f"note: {note}")
    if q.borrowed_from:
        click.echo("text vector borrows the sound of: " + ", ".join(f"{b.label} {b.weight:.2f}" for b in q.borrowed_from))
    if q.support:
        n = sum(x.sounds for x in q.support)
        named = ", ".join(f"{x.label} ({x.sounds})" for x in q.support[:4])
        more = f" and {len(q.support) - 4} more labels" if len(q.support) > 4 else ""
        click.echo(f"also ranked by nearness to {n} training sound{'' if n == 1 else 's'} of: {named}{more}")
    if q.excluded:
        click.echo(f"excluded: {', '.join(q.excluded)}")
    if not result.hits:
        click.echo("no hits")
        return
    click.echo(f"in {', '.join(_roots_of(result.hits))}")
    table = Table("#", "score", "file", "window (s)", "matched concepts", box=None, pad_edge=False)
    # What the other columns leave for the file: a long path keeps its end (the file name), not its
    # start, which a plain cut would keep ("usr/share/games/…"); --json has the whole path.
    path_width = max(24, _console().width - 66)
    # One scale for the whole table, so a weak hit's bars are short, not full width; one per kind,
    # because shared-concept contributions (concept score) and the account of a dense match
    # (dense ranking, or hits that share no query concept) are in different units.
    scale_concept = max((c.contribution for h in result.hits for c in h.contributions), default=0.0)
    scale_dense = max((c.contribution for h in result.hits for c in h.dense_contributions), default=0.0)
    hidden = 0
    for h in result.hits:
        # Show what ranked the hit: under dense ranking, the concept account of its dense score;
        # otherwise its shared concepts (the concept score), or, when those all fall under the
        # cut-off, the dense account instead of "-" (the tiny shared concepts count as hidden
        # and are in --json).
        shown, scale = [c for c in h.contributions if c.contribution > 0], scale_concept
        dense_account = [c for c in h.dense_contributions if c.contribution > 0]
        if q.ranking == "dense":
            shown, scale = dense_account, scale_dense
        elif not any(major([c.contribution for c in shown], scale)):
            hidden += len(shown)
            shown, scale = dense_account, scale_dense
        keep = major([c.contribution for c in shown], scale)
        hidden += sum(not k for k in keep)
        # The number beside its bar: on a narrow terminal a long concept name wraps, not the number.
        lines = [f"{_bar(c.contribution, scale)} {c.contribution:+.3f} {c.concept}"
                 for c, k in zip(shown, keep) if k][:3]
        extra = f"\n(+ {len(h.duplicates)} identical)" if h.duplicates else ""
        if h.support_examples:  # the training sound it is nearest among the query's support
            near = h.support_examples[0]
            extra += f"\n≈ {near.label} {near.similarity:.2f} (+{h.support_score:.3f})"
        table.add_row(str(h.rank), f"{h.score:.3f}", _path_tail(h.path, path_width) + extra, f"{h.start:.1f}–{h.end:.1f}",
                      "\n".join(lines) or "-")
    _console().print(table)
    if hidden:
        click.echo(f"({hidden} matched concepts under {MINOR_SHARE:.0%} of the largest are not shown; "
                   f"--json or `earmark explain` lists them all)")
    load = result.timing_ms.get("load", 0.0)
    took = f"{len(result.hits)} hits in {result.timing_ms.get('total', 0) - load:.0f} ms"
    if load >= 100:  # a fresh process: say where the wait went
        took += f" (+ {load / 1000:.1f} s loading the encoder and concepts)"
    click.echo(took)


class _QueryCommand(click.Command):
    """A command whose QUERY words may start with '-' (`earmark search -music +rain`): every
    argument that is not one of the command's own options (or an option's value) goes to QUERY,
    in the order given, instead of failing as "No such option '-m'"."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        options = {name: p for p in self.get_params(ctx) if isinstance(p, click.Option)
                   for name in p.opts + p.secondary_opts}
        front: list[str] = []
        words: list[str] = []
        rest = iter(args)
        for arg in rest:
            if arg == "--":
                words.extend(rest)
                break
            # Only whole option names count ("-k 5", "--top=5"): "-kick" excludes a concept, it is
            # not -k with the value "ick".
            name, attached = arg.split("=", 1)[0], "=" in arg
            opt = options.get(name)
            if opt is None:
                words.append(arg)
                continue
            front.append(arg)
            if not (opt.is_flag or opt.count or attached):
                value = next(rest, None)  # the option's value, even if it starts with '-'
                if value is None:  # missing: click's own message says which option needs one
                    return super().parse_args(ctx, args)
                front.append(value)
        return super().parse_args(ctx, front + ["--", *words])


@main.command(cls=_QueryCommand)
@click.argument("query", nargs=-1, required=True)
@click.option("-k", "--top", "k", type=click.IntRange(1, 1000), default=10, show_default=True, help="Number of sounds.")
@click.option("--ranking", type=click.Choice(RANKINGS), default=DEFAULT_RANKING, show_default=True,
              help="dense similarity, concept similarity, or reciprocal-rank fusion of both.")
@click.option("--aggregate", type=click.Choice(AGGREGATES), default=None,
              help="How windows become a sound's score: its windows pooled by loudness (dense ranking's "
                   "default), the best window (the other rankings' default), or the best three's mean.")
@click.option("--path", "path_glob", default=None, help="Only files whose path matches this glob.")
@click.option("--min-duration", type=float, default=None, help="Seconds.")
@click.option("--max-duration", type=float, default=None, help="Seconds.")
@click.option("--root", default=None, help="Only sounds under this root.")
@_library_option
@_json_option
@handle_errors
def search(query: tuple[str, ...], k: int, ranking: str, aggregate: str | None, path_glob: str | None,
           min_duration: float | None, max_duration: float | None, root: str | None, library_path: Path,
           as_json: bool) -> None:
    """Search by text, concepts and example: "rain on a roof", "+rain -music", "like:door.wav@1-3"."""
    lib = open_library(library_path)
    res = lib.search(" ".join(query), k=k, ranking=ranking, aggregate=aggregate, path_glob=path_glob,
                     min_duration=min_duration, max_duration=max_duration, root=root)
    print_result(res, as_json)


@main.command()
@click.argument("sound")
@click.option("-k", "--top", "k", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--start", type=float, default=None, help="Use only the part from START seconds.")
@click.option("--end", type=float, default=None, help="... to END seconds.")
@click.option("--ranking", type=click.Choice(RANKINGS), default=DEFAULT_RANKING, show_default=True)
@_library_option
@_json_option
@handle_errors
def similar(sound: str, k: int, start: float | None, end: float | None, ranking: str, library_path: Path,
            as_json: bool) -> None:
    """Sounds like SOUND (a file, indexed or not, or a sound id)."""
    print_result(open_library(library_path).similar(sound, k=k, start=start, end=end, ranking=ranking), as_json)


@main.command()
@click.argument("sound")
@click.option("--query", "-q", required=True, help="The query to explain the match of.")
@click.option("--ranking", type=click.Choice(RANKINGS), default=DEFAULT_RANKING, show_default=True)
@_library_option
@_json_option
@handle_errors
def explain(sound: str, query: str, ranking: str, library_path: Path, as_json: bool) -> None:
    """Why SOUND (id or path) matches QUERY: contributions that sum to the concept score."""
    from dataclasses import asdict

    hit = open_library(library_path).explain(query, sound, ranking=ranking)
    if as_json:
        _print_json(asdict(hit))
        return
    click.echo(f"{hit.abs_path}  best window {hit.start:.2f}–{hit.end:.2f} s")
    dense = f"{hit.dense_score:.4f}" if hit.dense_score is not None else "-"
    concept = f"{hit.concept_score:.4f}" if hit.concept_score is not None else "-"
    click.echo(f"dense score {dense}   concept score {concept}")
    if hit.contributions:
        click.echo("concept score = Σ query weight × hit weight:")
        for c in hit.contributions:
            click.echo(f"  {c.concept:28} {c.query_weight:+.3f} × {c.hit_weight:.3f} = {c.contribution:+.4f}")
        click.echo(f"  {'total':28} {sum(c.contribution for c in hit.contributions):+.4f}")
    if hit.dense_contributions:
        share = f"{100 * hit.dense_explained:.0f}%" if hit.dense_explained is not None else "n/a"
        click.echo(f"concept account of the dense score (covers {share}):")
        for c in hit.dense_contributions:
            click.echo(f"  {c.concept:28} {c.contribution:+.4f}")
    click.echo("the sound's own top concepts: " + ", ".join(f"{c.concept} {c.weight:.2f}" for c in hit.top_concepts))


@main.command()
@click.argument("sound")
@click.option("--top", type=int, default=20, show_default=True)
@_library_option
@_json_option
@handle_errors
def concepts(sound: str, top: int, library_path: Path, as_json: bool) -> None:
    """A sound's top concepts (mean code over its windows), with fidelity and L0."""
    prof = open_library(library_path).concepts_of(sound, top=top)
    if as_json:
        _print_json(prof)
        return
    click.echo(f"{prof['path']}: {prof['windows']} windows, {prof['l0']:.1f} concepts per window, "
               f"fidelity {prof['fidelity']:.3f} (vocabulary {prof['vocabulary']})")
    scale = max((c["weight"] for c in prof["concepts"]), default=0.0)
    for c in prof["concepts"]:
        click.echo(f"  {_bar(c['weight'], scale, 20)} {c['weight']:.3f} {c['concept']}")


@main.command()
@click.option("--faiss", "factory", default=None,
              help='FAISS factory string for the dense and concept indexes ("Flat", "HNSW32", "IVF4096,Flat").')
@click.option("--auto", "auto", is_flag=True, help="Go back to the automatic choice by size.")
@_library_option
@_json_option
@handle_errors
def rebuild(factory: str | None, auto: bool, library_path: Path, as_json: bool) -> None:
    """Rebuild (and retrain) the indexes from the database, optionally as another FAISS type."""
    lib = open_library(library_path)
    rep = lib.rebuild_indexes("" if auto else factory)
    if as_json:
        _print_json({"committed": rep.committed, "rebuilt": rep.rebuilt})
    else:
        for kind, gen in rep.committed.items():
            click.echo(f"{kind} index rebuilt as generation {gen}")


@main.group()
def backend() -> None:
    """Where the indexes live: FAISS files or a Milvus collection (status, copy)."""


def _print_backend(info, as_json: bool) -> None:
    if as_json:
        _print_json(info.to_dict())
        return
    click.echo(f"backend {info.backend}: {info.segments} segments; store {info.database}")
    if info.milvus_uri:
        synced = "up to date" if info.synced_data_version == info.data_version else \
            f"reflects data version {info.synced_data_version}, store is at {info.data_version}"
        click.echo(f"milvus {info.milvus_uri} collection {info.milvus_collection} ({info.milvus_index}, "
                   f"fusion {info.milvus_fusion}): {synced}")


@backend.command(name="status")
@_library_option
@_json_option
@handle_errors
def backend_status(library_path: Path, as_json: bool) -> None:
    """Show the backend in use and what the Milvus collection reflects."""
    _print_backend(open_library(library_path).backend_info(), as_json)


@backend.command(name="copy")
@click.option("--to", "to", type=click.Choice(["faiss", "milvus"]), required=True)
@click.option("--milvus-uri", default=None, help="Milvus Lite file or server URI (default: the one recorded).")
@click.option("--milvus-index", default=None, help="Milvus dense index type (FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ, HNSW).")
@click.option("--milvus-fusion", type=click.Choice(["earmark", "rrf", "weighted"]), default=None)
@click.option("--wait", is_flag=True, help="Wait for another writer instead of failing.")
@_library_option
@_json_option
@handle_errors
def backend_copy(to: str, milvus_uri: str | None, milvus_index: str | None, milvus_fusion: str | None, wait: bool,
                 library_path: Path, as_json: bool) -> None:
    """Copy the indexes to FAISS or Milvus (from the database) and switch the library to it."""
    info = open_library(library_path).copy_backend(to, milvus_uri=milvus_uri, milvus_index=milvus_index,
                                                   milvus_fusion=milvus_fusion, wait=wait)
    if not as_json:
        click.echo(f"copied {info.segments} segments to {to} in {info.seconds:.1f} s")
    _print_backend(info, as_json)


@main.command()
@click.argument("queries", nargs=-1)
@click.option("--dir", "directory", type=click.Path(path_type=Path), default="earmark-demo", show_default=True,
              help="Where to build the demo library (reused if it exists).")
@click.option("-k", "--top", "k", type=int, default=5, show_default=True)
@_json_option
@handle_errors
def demo(queries: tuple[str, ...], directory: Path, k: int, as_json: bool) -> None:
    """Build a demo library from the sounds shipped with earmark and search it."""
    from .engine.demo import run_demo

    run = run_demo(directory, queries, k=k, progress=not as_json and sys.stderr.isatty())
    if as_json:
        _print_json({"library": str(run.library), "indexed": run.indexed, "reembedded": run.reembedded,
                     "results": [r.to_dict() for r in run.results],
                     "evidence": run.evidence.to_dict() if run.evidence else None})
        return
    if run.reembedded:
        click.echo(f"the demo library was built with an earlier encoder: {run.reembedded} sounds embedded again")
    click.echo(f"demo library {run.library}: {run.indexed} sounds indexed with the embedded encoder")
    for res in run.results:
        click.echo("")
        print_result(res, as_json=False)
    ev = run.evidence
    if ev is not None:
        click.echo(f"\nwhy {Path(ev.path).name} matched '{ev.target}' ({ev.label}, {ev.start:.1f}–{ev.end:.1f} s): "
                   f"listen to what the model heard, and to the rest")
        click.echo(f"  mask-in  {ev.mask_in_wav}\n  mask-out {ev.mask_out_wav}\n  picture  {ev.png}")
    click.echo(f"\ntry: earmark search --library {run.library} \"footsteps on gravel\"")


@main.group()
def vocab() -> None:
    """Concept vocabularies: list, show, use, build."""


@vocab.command(name="ls")
@_library_option
@_json_option
def vocab_ls(library_path: Path, as_json: bool) -> None:
    """The shipped vocabularies, and the one the library uses."""
    from .vocabularies import load_vocabulary, shipped_vocabularies

    active = active_hash = None
    if (Path(library_path) / "earmark.db").exists():
        try:
            lib = open_library(library_path)
            active, active_hash = lib.setting("vocabulary"), lib.active_vocabulary_hash()
        except Exception:  # listing must work even when the library cannot be opened
            active = active_hash = None
    rows = []
    for name in shipped_vocabularies():
        v = load_vocabulary(name)
        rows.append({"name": name, "size": len(v), "hash": v.hash, "method": v.header.get("method", ""),
                     "active": name == active,
                     # the library keeps the copy it was coded with; a later earmark may ship another
                     "library_has_other_version": name == active and active_hash not in (None, v.hash)})
    if as_json:
        _print_json({"shipped": rows, "library": active, "library_vocabulary_hash": active_hash})
        return
    for r in rows:
        click.echo(f"{'*' if r['active'] else ' '} {r['name']:10} {r['size']:5} concepts  {r['method']:10} {r['hash']}")
        if r["library_has_other_version"]:
            click.echo(f"    the library's codes use an earlier {r['name']} ({active_hash}); "
                       f"`earmark vocab use {r['name']}` recomputes them with this one")
    if active and active not in [r["name"] for r in rows]:
        click.echo(f"* {active} (the library's own file)")


@vocab.command(name="show")
@click.argument("name")
@click.option("--limit", type=int, default=50, show_default=True)
@_json_option
@handle_errors
def vocab_show(name: str, limit: int, as_json: bool) -> None:
    """A vocabulary's header and first concepts (NAME: shipped name or file)."""
    from .vocabularies import load_vocabulary

    v = load_vocabulary(name)
    if as_json:
        _print_json({"name": v.name, "hash": v.hash, "header": v.header, "size": len(v), "concepts": list(v.concepts[:limit])})
        return
    for k, val in v.header.items():
        click.echo(f"# {k}: {val}")
    click.echo(f"({len(v)} concepts, hash {v.hash})")
    for c in v.concepts[:limit]:
        click.echo(c)


@vocab.command(name="use")
@click.argument("name")
@click.option("--lam", type=float, default=None, help="Sparsity λ (default 0.15).")
@click.option("--target-l0", type=int, default=None, help="Aim for this many concepts per window.")
@_library_option
@handle_errors
def vocab_use(name: str, lam: float | None, target_l0: int | None, library_path: Path) -> None:
    """Recompute the library's concept codes with another vocabulary or sparsity (no re-embedding)."""
    n = open_library(library_path).use_vocabulary(name, lam=lam, target_l0=target_l0, progress=sys.stderr.isatty())
    click.echo(f"library now uses vocabulary {name}; {n} segments recoded")


@vocab.command(name="build")
@click.option("--tags", "tags_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Tag list: one tag a line, optionally 'tag<TAB>count'.")
@click.option("--method", type=click.Choice(["baseline", "pruned", "clustered"]), required=True)
@click.option("--size", type=int, default=2000, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Vocabulary file to write.")
@click.option("--encoder", default="embedded", show_default=True, help="Text encoder for the clustered method.")
@handle_errors
def vocab_build(tags_file: Path, method: str, size: int, out: Path, encoder: str) -> None:
    """Build a vocabulary from any tag list with the paper's methods."""
    from .engine.encoders import load_encoder
    from .vocabularies.build import build_from_tag_file

    enc = load_encoder(encoder) if method == "clustered" else None
    v = build_from_tag_file(tags_file, method, size, out, encoder=enc)
    click.echo(f"wrote {out}: {len(v)} concepts ({method}), hash {v.hash}")


@main.command()
@click.option("--labels", "labels_csv", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with columns file,label (paths relative to the CSV or absolute).")
@click.option("--alpha", type=float, default=1.0, show_default=True, help="Ridge weight toward the identity.")
@_library_option
@_json_option
@handle_errors
def adapt(labels_csv: Path, alpha: float, library_path: Path, as_json: bool) -> None:
    """Fine-tune concept codes: train the d×d adapter on labelled sounds (arXiv 2504.14076)."""
    res = open_library(library_path).adapt(labels_csv, alpha=alpha, progress=not as_json and sys.stderr.isatty())
    if as_json:
        _print_json(res)
        return
    click.echo(f"adapter {res['adapter']} trained on {res['sounds']} sounds, {len(res['labels'])} labels; "
               f"{res['recoded_segments']} segments recoded")
    for k, v in res["metrics"].items():
        click.echo(f"  {k}: {v:.4f}")


@main.command(name="train-encoder")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="embedded-model", show_default=True)
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=cache_root() / "corpus",
              show_default=True, help="Downloaded packages, corpus manifest and cached features.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=int, default=40, show_default=True)
@click.option("--block4-scale", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="> 0: train the CNN's last block too, at this step-size ratio to the heads (0.1 was tried; "
                   "caches block 3's maps, 0.57 GB). 0: frozen CNN, as shipped.")
@click.option("--package-adversary", type=click.FloatRange(min=0.0), default=None,
              help="Weight of the domain-confusion term that keeps the audio head from encoding which package a "
                   "sound comes from (default: the shipped recipe's, 0.3; 0 turns it off).")
@click.option("--procedural", type=click.IntRange(min=0), default=None,
              help="Procedurally synthesised sounds per generator (32 generators: rain, wind, impacts, animal "
                   "calls, laughter, ...) that join the query-time sound prototypes of their labels (default: the shipped "
                   "recipe's, 8; 0 turns them off).")
@handle_errors
def train_encoder(out: Path, cache: Path, seed: int, epochs: int, block4_scale: float,
                  package_adversary: float | None, procedural: int | None) -> None:
    """Rebuild the embedded model's corpus and train it (reproducible; GPU when present)."""
    from .engine.training.model_card import against_shipped, metrics_table
    from .engine.training.train import TrainConfig
    from .engine.training.train import train_encoder as run

    cfg = TrainConfig(seed=seed, epochs=epochs, block4_scale=block4_scale)
    if package_adversary is not None:
        cfg.package_adversary_weight = package_adversary
    if procedural is not None:
        cfg.procedural_variants = procedural
    report = run(out, cache, progress=True, config=cfg)
    click.echo(f"model written to {report.weights_path} ({report.n_sounds} sounds, {report.n_train_rows} training "
               f"rows); validation on held-out packages (all figures in {Path(out) / 'metrics.json'}):")
    click.echo(metrics_table(Path(out) / "metrics.json"))
    click.echo(against_shipped(report.weights_path))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--token", envvar="EARMARK_TOKEN", default=None, help="Enables write endpoints, protected by this token.")
@click.option("--cors-origin", "cors", multiple=True, help="Allow browser calls from this origin (off by default).")
@_library_option
@handle_errors
def serve(host: str, port: int, token: str | None, cors: tuple[str, ...], library_path: Path) -> None:
    """Serve the HTTP API and the web page (FastAPI; OpenAPI docs at /docs)."""
    try:
        from .engine.server.app import serve as run
    except ImportError as exc:
        raise FileNotFoundError(f"the server extra is not installed ({exc.name}); pip install 'earmark[server]'") from exc
    open_library(library_path)  # fail here with a clear message, before the server starts
    click.echo(f"serving {library_path} on http://{host}:{port}/ (API docs at /docs)")
    run(library_path, host=host, port=port, token=token, cors_origins=list(cors) or None)


class _EvidenceGroup(click.Group):
    """`earmark evidence SOUND -q Q` renders; `earmark evidence train|eval` are subcommands."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands:
            return "render", self.commands["render"], args
        return super().resolve_command(ctx, args)


@main.group(cls=_EvidenceGroup, context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
def evidence() -> None:
    """Listenable evidence (L-MAC): `earmark evidence SOUND -q QUERY`, `evidence train`, `evidence eval`."""


@evidence.command(name="render")
@click.argument("sound")
@click.option("--query", "-q", required=True, help="What the evidence should show (text or +concept).")
@click.option("--start", type=float, default=None, help="Window start in seconds (default: the best window).")
@click.option("--end", type=float, default=None)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="Arithmetic of the mask pass: auto is bf16 on a CPU with native bfloat16 (2x faster), else fp32.")
@_library_option
@_json_option
@handle_errors
def evidence_render(sound: str, query: str, start: float | None, end: float | None, precision: str,
                    library_path: Path, as_json: bool) -> None:
    """Write the mask-in WAV, mask-out WAV and spectrogram PNG for SOUND and QUERY."""
    ev = open_library(library_path).evidence(sound, query, start, end, precision)
    if as_json:
        _print_json(ev.to_dict())
        return
    click.echo(f"{ev.path} {ev.start:.2f}–{ev.end:.2f} s, target '{ev.target}'")
    click.echo(f"method: {ev.label}" + (f" ({ev.precision} mask pass)" if ev.method == "lmac" else ""))
    if ev.decoder == "shipped":
        click.echo("  (the decoder shipped with the embedded encoder, trained on its corpus; "
                   "`earmark evidence train` trains one on this library's own sounds)")
    elif ev.method != "lmac":
        click.echo("  (no decoder for this library's encoder: run `earmark evidence train` for L-MAC masks)")
    click.echo(f"  mask-in  {ev.mask_in_wav}")
    click.echo(f"  mask-out {ev.mask_out_wav}")
    click.echo(f"  picture  {ev.png}")


@evidence.command(name="train")
@click.option("--steps", type=int, default=None,
              help="Total steps, counting a resumed checkpoint's (default 1200: ~30 min on 2 CPU cores).")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--max-segments", type=int, default=2000, show_default=True, help="Windows sampled from the library.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--held-out", type=float, default=None,
              help="Share of the sounds kept out of training for `evidence eval` (default 0.1 in libraries "
                   "of 20+ sounds; 0: train on every sound).")
@_library_option
@_json_option
@handle_errors
def evidence_train(steps: int | None, batch_size: int, max_segments: int, seed: int, held_out: float | None,
                   library_path: Path, as_json: bool) -> None:
    """Train the library's L-MAC decoder on its own sounds (self-supervised; resumable)."""
    res = open_library(library_path).train_evidence(steps=steps, batch_size=batch_size, max_segments=max_segments,
                                                     seed=seed, progress=not as_json, held_out=held_out)
    last = res.history[-1] if res.history else {}
    if as_json:
        _print_json({"checkpoint": str(res.checkpoint_path), "steps_done": res.steps_done, "last": last})
    else:
        click.echo(f"decoder at {res.checkpoint_path}: {res.steps_done} steps; last loss terms {last}")


_SPLIT_WORDS = {
    "held-out": "windows of sounds held out of decoder training",
    "train": "in-sample: windows of the decoder's training sounds",
    "all": "in-sample: all windows (the decoder, if any, trained on every sound)",
    "unseen": "windows of this library, with the decoder shipped with the embedded encoder (trained on the "
              "encoder's corpus, not on this library)",
}


@evidence.command(name="eval")
@click.option("--windows", type=int, default=64, show_default=True, help="At most this many windows, sampled.")
@click.option("--in-sample", is_flag=True, help="Measure on the decoder's training sounds, not the held-out ones.")
@click.option("--seed", type=int, default=0, show_default=True)
@_library_option
@_json_option
@handle_errors
def evidence_eval(windows: int, in_sample: bool, seed: int, library_path: Path, as_json: bool) -> None:
    """Faithfulness of the decoder's masks against random, all-ones and gradient-saliency masks."""
    from dataclasses import asdict

    res = open_library(library_path).evaluate_evidence(n_windows=windows, seed=seed, in_sample=in_sample)
    rows = {m: asdict(sc) for m, sc in res.scores.items()}
    if as_json:
        _print_json({"n_windows": res.n_windows, "split": res.split, "scores": rows})
        return
    click.echo(f"{res.n_windows} {_SPLIT_WORDS[res.split]}")
    cols = list(next(iter(rows.values())).keys())
    click.echo("method".ljust(20) + "".join(c.rjust(9) for c in cols))
    for m, r in rows.items():
        click.echo(m.ljust(20) + "".join(f"{float(r[c]):9.3f}" for c in cols))


def _canonical_command(ctx: click.Context) -> str:
    """The command line that reproduces this run, every option spelled out (defaults included)."""
    import shlex

    words = ["earmark", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            words.append(str(value))
        elif param.name == "as_json" or value is None or value == () or value is False:
            continue
        elif param.is_flag:
            words.append(param.opts[0])
        else:
            for v in (value if param.multiple else (value,)):
                words += [param.opts[0], str(v)]
    return shlex.join(words)


def _bench_options(fn: Callable) -> Callable:
    """Options shared by `bench classify` and `bench retrieve`."""
    from .engine.bench.datasets import FORMATS, SPLITS
    from .engine.window_pooling import DEFAULT_POOLING, POOLINGS

    options = [
        click.argument("dataset", type=click.Path(path_type=Path)),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                     help="Dataset layout (default: detected from the folder or CSV header)."),
        click.option("--split", type=click.Choice(SPLITS), default="val", show_default=True,
                     help="manifest format: the validation packages, the training ones, or all."),
        click.option("--audio-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="clotho / audiocaps: folder holding the audio files."),
        click.option("--skip-missing", is_flag=True, help="Leave out listed files that are absent (counted in the output)."),
        click.option("--encoder", default="embedded", show_default=True,
                     help="Encoder spec: embedded, hf:DIR_OR_HUB_ID, laion:FILE.pt or py:module:attr."),
        click.option("--vocabulary", "vocabularies", multiple=True,
                     help="Vocabulary for concept rows (repeatable; default: baseline, pruned, clustered)."),
        click.option("--lam", "lams", type=float, multiple=True, help="Sparsity λ (repeatable; default 0.05 0.15 0.25)."),
        click.option("--target-l0", "target_l0s", type=int, multiple=True,
                     help="Concepts per clip instead of a fixed λ (repeatable)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seeds chance estimates and fold assignment."),
        click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path),
                     default=cache_root() / "bench", show_default=True,
                     help="Clip embeddings, text embeddings and codes, per (dataset, encoder)."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Write the JSON, the table and PNG plots into this folder."),
        click.option("--clip-pooling", "pooling", type=click.Choice(POOLINGS), default=DEFAULT_POOLING,
                     show_default=True,
                     help="One embedding per clip from its windows: weighted by each window's power, or their plain mean."),
        _json_option,
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _bench_dataset(dataset: Path, fmt: str | None, split: str, audio_dir: Path | None, skip_missing: bool):
    from .engine.bench.datasets import read_dataset

    return read_dataset(dataset, fmt, split=split, audio_dir=audio_dir, skip_missing=skip_missing)


def _bench_print(result, out_dir: Path | None, as_json: bool) -> None:
    from .engine.bench.report import format_table, write_outputs

    files = write_outputs(result, out_dir) if out_dir else {}
    if as_json:
        _print_json({**result.to_dict(), "files": files})
        return
    d, p = result.dataset, result.provenance
    click.echo(f"{result.task} {d['name']} ({d['format']}, {d['clips']} clips) with {p['encoder']} "
               f"[{p['encoder_fingerprint']}], seed {p['seed']}")
    if p.get("prompts"):  # classify: which prompts the scores used (the encoder's own by default)
        click.echo("prompts: " + " + ".join(repr(x) for x in p["prompts"]) + ", averaged" * (len(p["prompts"]) > 1))
    click.echo(format_table([result]))
    for note in result.notes:
        click.echo(f"note: {note}")
    for kind, path in files.items():
        click.echo(f"wrote {kind:15} {path}")


@main.group()
def bench() -> None:
    """Benchmarks: zero-shot classification and retrieval, dense embeddings against concept codes."""


@bench.command(name="classify")
@_bench_options
@click.option("--adapter", is_flag=True, help="Add rows through the paper's adapter, trained per test fold on the other folds.")
@click.option("--folds", "folds", default=None, help="Evaluate only these test folds (comma-separated; default all).")
@click.option("--n-folds", type=int, default=5, show_default=True, help="Seeded folds for the adapter when the dataset has none.")
@click.option("--prompt", "prompts", multiple=True,
              help="Zero-shot prompt, {} is the label; repeat to average several. Default: the encoder's own "
                   "(CLAP: 'This is a sound of {}'; embedded: '{}' and 'This is a sound of {}').")
@click.option("--exemplars/--no-exemplars", default=True, show_default=True,
              help="Add the encoder's exemplar support for each label to the dense and concept rows' scores, as "
                   "search ranks (the embedded encoder's training sounds; other encoders have none).")
@click.pass_context
@handle_errors
def bench_classify(ctx: click.Context, dataset: Path, fmt: str | None, split: str, audio_dir: Path | None,
                   skip_missing: bool, encoder: str, vocabularies: tuple[str, ...], lams: tuple[float, ...],
                   target_l0s: tuple[int, ...], seed: int, cache_dir: Path, out_dir: Path | None, as_json: bool,
                   pooling: str, adapter: bool, folds: str | None, n_folds: int, prompts: tuple[str, ...],
                   exemplars: bool) -> None:
    """Zero-shot classification of DATASET: accuracy, mAP, F1; dense, concept codes, adapter."""
    from .engine.bench.run import DEFAULT_VOCABULARIES, run_classify
    from .engine.encoders import load_encoder

    data = _bench_dataset(dataset, fmt, split, audio_dir, skip_missing)
    result = run_classify(data, load_encoder(encoder), vocabularies=vocabularies or DEFAULT_VOCABULARIES, lams=lams,
                          target_l0s=target_l0s, adapter=adapter, n_folds=n_folds, seed=seed, prompts=prompts or None,
                          folds=tuple(f.strip() for f in folds.split(",") if f.strip()) if folds else (),
                          cache_dir=cache_dir, progress=not as_json and sys.stderr.isatty(),
                          command=_canonical_command(ctx), pooling=pooling, exemplars=exemplars)
    _bench_print(result, out_dir, as_json)


@bench.command(name="retrieve")
@_bench_options
@click.pass_context
@handle_errors
def bench_retrieve(ctx: click.Context, dataset: Path, fmt: str | None, split: str, audio_dir: Path | None,
                   skip_missing: bool, encoder: str, vocabularies: tuple[str, ...], lams: tuple[float, ...],
                   target_l0s: tuple[int, ...], seed: int, cache_dir: Path, out_dir: Path | None, pooling: str,
                   as_json: bool) -> None:
    """Text→audio and audio→text retrieval on DATASET's captions: R@1/5/10, mAP@10; dense against concept."""
    from .engine.bench.run import DEFAULT_VOCABULARIES, run_retrieve
    from .engine.encoders import load_encoder

    data = _bench_dataset(dataset, fmt, split, audio_dir, skip_missing)
    result = run_retrieve(data, load_encoder(encoder), vocabularies=vocabularies or DEFAULT_VOCABULARIES, lams=lams,
                          target_l0s=target_l0s, seed=seed, cache_dir=cache_dir,
                          progress=not as_json and sys.stderr.isatty(), command=_canonical_command(ctx),
                          pooling=pooling)
    _bench_print(result, out_dir, as_json)


@main.command()
@_library_option
@handle_errors
def migrate(library_path: Path) -> None:
    """Upgrade a library's database to this earmark's schema."""
    from .index import db

    engine = db.make_engine(Path(library_path) / db.DB_NAME)
    if not (Path(library_path) / db.DB_NAME).exists():
        raise FileNotFoundError(f"{library_path}: not an earmark library")
    before, after = db.upgrade(engine)
    click.echo(f"library schema {before or 'empty'} -> {after}" if before != after else f"library schema already at {after}")


if __name__ == "__main__":
    main()
